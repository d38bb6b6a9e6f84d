//! Harness for the end-to-end scenarios: free ports, SIPp peers, a real headless browser and
//! bounded polling.
//!
//! Everything here drives real programs on 127.0.0.1 and owns them: every spawned process is
//! killed when its handle is dropped, and every wait takes a timeout, so a failing scenario
//! ends with an error that says what it was waiting for instead of hanging the test run.
//!
//! - [`free_udp_port`], [`free_tcp_port`]: loopback ports for servers the test starts.
//! - [`Sipp`] / [`SippBuilder`]: run `/usr/bin/sipp` with a scenario from `tests/sipp/` or
//!   a built-in one; [`Sipp::wait`] returns a [`SippResult`] (exit code, stderr, error log,
//!   final statistics screen).
//! - [`Browser`]: chromedriver plus headless Debian Chromium through fantoccini, with
//!   [`Browser::goto`], [`Browser::wait_for`] and [`Browser::screenshot`].
//! - [`start_hub`], [`RunningHub`]: a real hub on loopback with its first admin.
//! - [`UdpRelay`]: a UDP path between the appliance and the hub that drops, delays or cuts.
//! - [`schemathesis`], [`SchemathesisRun`]: schemathesis in a virtualenv under the target
//!   directory, run against a server's OpenAPI document.
//! - [`wait_until`], [`wait_for_some`]: poll an async condition until it holds or time runs out.
//! - [`screenshot_dir`]: where scenario screenshots go.

mod browser;
mod hub;
mod json_api;
mod ports;
mod schemathesis;
mod sipp;
mod wait;

pub use browser::{Browser, CHROMEDRIVER, CHROMIUM, Engine, FIREFOX};
pub use hub::{RunningHub, start_hub};
pub use json_api::JsonApi;
pub use ports::{free_tcp_port, free_udp_port};
pub use schemathesis::{SchemathesisOutcome, SchemathesisRun, schemathesis};
pub use sync_link::relay::UdpRelay;
pub use sipp::{SIPP, Sipp, SippBuilder, SippResult, sipp_scenario_dir};
pub use wait::{WaitTimedOut, wait_for_some, wait_until};

/// Where scenarios write their screenshots: `target/screenshots` on an ordinary run, so a
/// test run leaves the repository as it found it; the kept copies in `docs/screenshots` (the
/// README shows them) are refreshed with `UPDATE_SCREENSHOTS=1`, then looked at and committed.
pub fn screenshot_dir() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|value| value == "1") {
        root.join("docs").join("screenshots")
    } else {
        root.join("target").join("screenshots")
    };
    // A failure here shows up as the screenshot's own write error, which names the path.
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The last `max_bytes` or so of a log (cut at a character boundary).
pub(crate) fn tail(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_cuts_at_character_boundaries() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("呼叫失败", 4), "败");
    }
}
