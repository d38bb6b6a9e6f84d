#!/usr/bin/env bash
# The whole test run, as CI does it: install the programs the end-to-end tests drive, then
# every crate's tests. Bounded so a hung test cannot eat CI's 90 minutes without a report.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# Tests that initialise tracing read RUST_LOG; a caller's own setting wins.
export RUST_LOG="${RUST_LOG:-info}"
# A one-off build gains nothing from incremental state, which would double the disk it uses.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

timeout --kill-after=60s 80m cargo test --workspace --no-fail-fast
