//! Shared helpers of the SIPp interop tests: free ports, scenario paths, and a SIPp process
//! that is killed on drop and whose logs are shown when it fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

#[path = "../../../tests/src/ports.rs"]
mod ports;
pub use ports::free_udp_port;

pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/sipp")
        .join(name)
}

/// One SIPp process running one scenario once.
pub struct Sipp {
    name: String,
    child: Child,
    log_dir: PathBuf,
}

impl Sipp {
    /// Starts SIPp on `port` (media on `media_port`); `extra` adds e.g. the remote address.
    pub fn start(
        name: &str,
        scenario: &str,
        port: u16,
        media_port: u16,
        extra: &[String],
        log_dir: &Path,
    ) -> Sipp {
        let stdout =
            std::fs::File::create(log_dir.join(format!("{name}.out"))).expect("sipp stdout file");
        let stderr = std::fs::File::create(log_dir.join(format!("{name}.stderr")))
            .expect("sipp stderr file");
        let mut command = Command::new("/usr/bin/sipp");
        command
            .arg("-sf")
            .arg(scenario_path(scenario))
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mi",
                "127.0.0.1",
                "-mp",
                &media_port.to_string(),
            ])
            .args([
                "-m",
                "1",
                "-timeout",
                "30s",
                "-timeout_error",
                "-nostdin",
                "-trace_err",
                "-trace_msg",
            ])
            .arg("-error_file")
            .arg(log_dir.join(format!("{name}.errors")))
            .arg("-message_file")
            .arg(log_dir.join(format!("{name}.messages")))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .expect("start /usr/bin/sipp (Debian package sip-tester)");
        Sipp {
            name: name.to_string(),
            child,
            log_dir: log_dir.to_path_buf(),
        }
    }

    pub fn logs(&self) -> String {
        let mut text = String::new();
        for suffix in ["errors", "stderr", "messages"] {
            let path = self.log_dir.join(format!("{}.{suffix}", self.name));
            if let Ok(content) = std::fs::read_to_string(&path) {
                let tail: String = content
                    .chars()
                    .rev()
                    .take(4000)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect();
                text.push_str(&format!("--- {} ---\n{tail}\n", path.display()));
            }
        }
        text
    }

    /// Waits for the scenario to end and checks it succeeded.
    pub async fn finish(mut self, timeout: Duration) -> anyhow::Result<()> {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.context("waiting for sipp")?,
            Err(_) => bail!(
                "sipp {} still running after {timeout:?}\n{}",
                self.name,
                self.logs()
            ),
        };
        if !status.success() {
            bail!("sipp {} failed ({status})\n{}", self.name, self.logs());
        }
        Ok(())
    }
}
