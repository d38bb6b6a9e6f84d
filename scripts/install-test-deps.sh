#!/usr/bin/env bash
# Installs the programs the end-to-end tests drive, from Debian's packages, and only those
# that are missing: SIPp (sip-tester), Chromium and chromedriver, baresip, Firefox ESR (the
# consoles' second browser); then geckodriver (Firefox's WebDriver, not packaged by Debian)
# with `cargo install` when it is not on the PATH.
# Idempotent: on a machine that has them all it touches nothing and needs no network.
set -euo pipefail

# cargo-deb builds the Debian packages that tests/tests/packages.rs installs.
if ! cargo deb --version >/dev/null 2>&1; then
    echo "install-test-deps: installing cargo-deb"
    cargo install cargo-deb --locked
fi

# fonts-wqy-zenhei: Chromium has no CJK font otherwise, and screenshots of the
# Chinese UI would show boxes.
# dpkg-dev and systemd: the package test (dpkg-shlibdeps for the dependencies, systemd-analyze).
packages=(sip-tester chromium chromium-driver baresip fonts-wqy-zenhei firefox-esr dpkg-dev systemd passwd)

missing=()
for package in "${packages[@]}"; do
    # dpkg-query fails for a package it has never heard of; that is "missing" too.
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$package")
    fi
done

# geckodriver: from crates.io through cargo, into ~/.cargo/bin (the harness looks there too).
if ! command -v geckodriver >/dev/null && [[ ! -x "$HOME/.cargo/bin/geckodriver" ]]; then
    echo "install-test-deps: installing geckodriver (cargo install)"
    cargo install --locked geckodriver
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-test-deps: all present (${packages[*]} geckodriver)"
    exit 0
fi

# CI and developer machines run as root; elsewhere fall back to sudo.
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "install-test-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

# Fail here, with the name, rather than later in a test with a spawn error.
for binary in /usr/bin/sipp /usr/bin/chromium /usr/bin/chromedriver /usr/bin/baresip /usr/bin/firefox-esr; do
    if [[ ! -x "$binary" ]]; then
        echo "install-test-deps: $binary is still missing after installing ${missing[*]}" >&2
        exit 1
    fi
done
echo "install-test-deps: done"
