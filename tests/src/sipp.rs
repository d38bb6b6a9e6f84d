//! SIPp as a real SIP peer: a carrier trunk that answers or refuses, or an agent's phone.
//!
//! A [`SippBuilder`] collects the command line (scenario, addresses, call count, auth,
//! variables, global timeout), [`SippBuilder::spawn`] starts `/usr/bin/sipp` in a private
//! temporary directory, and [`Sipp::wait`] returns a [`SippResult`] with the exit code and
//! the logs SIPp left there. Dropping a [`Sipp`] kills the process.
//!
//! SIPp's exit codes: 0 all calls succeeded, 1 at least one call failed, 97 stopped by an
//! internal command, 99 stopped before any call was processed, 255 / 254 fatal error
//! (bad arguments, socket bind failure).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::tail;

/// Where Debian's `sip-tester` package installs SIPp.
pub const SIPP: &str = "/usr/bin/sipp";

/// Most bytes of SIPp's stderr kept for the result; fatal errors are a few lines.
const STDERR_LIMIT: usize = 64 * 1024;

/// The folder holding this repository's SIPp scenario files (`tests/sipp/`).
pub fn sipp_scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

/// Which scenario SIPp plays.
#[derive(Debug, Clone)]
enum Scenario {
    /// An XML file (absolute path).
    File(PathBuf),
    /// One of SIPp's embedded scenarios (`uac`, `uas`, `regexp`, ...).
    BuiltIn(String),
}

/// The command line of one SIPp run. Start with [`Sipp::scenario`] or [`Sipp::built_in`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SippBuilder {
    scenario: Scenario,
    local_ip: String,
    local_port: Option<u16>,
    remote: Option<SocketAddr>,
    max_calls: Option<u32>,
    service: Option<String>,
    auth_user: Option<String>,
    auth_password: Option<String>,
    variables: Vec<(String, String)>,
    global_timeout: Option<Duration>,
    trace_messages: bool,
    extra_args: Vec<String>,
}

/// A running SIPp. Dropping it kills the process.
pub struct Sipp {
    child: Child,
    stderr_reader: Option<JoinHandle<Vec<u8>>>,
    work_dir: TempDir,
    command_line: String,
}

/// How a SIPp run ended.
#[derive(Debug, Clone)]
pub struct SippResult {
    /// SIPp's exit code; `None` when it was killed (by a signal or by [`Sipp::wait`]'s timeout).
    pub exit_code: Option<i32>,
    /// True when [`Sipp::wait`] gave up and killed SIPp.
    pub timed_out: bool,
    /// What SIPp printed on stderr (fatal errors, scenario parse errors).
    pub stderr: String,
    /// The `-trace_err` log: unexpected messages, retransmission timeouts.
    pub error_log: String,
    /// The final statistics screen (`-trace_screen`): calls created, successful, failed.
    pub screen: String,
    /// Every message sent and received, when [`SippBuilder::trace_messages`] was asked for.
    pub messages: Option<String>,
    /// The command that was run, for error messages.
    pub command_line: String,
}

impl Sipp {
    /// A run of the scenario file `name` from `tests/sipp/` (e.g. `"trunk_answer.xml"`);
    /// an absolute path is taken as is.
    pub fn scenario(name: impl AsRef<Path>) -> SippBuilder {
        let name = name.as_ref();
        let path = if name.is_absolute() {
            name.to_path_buf()
        } else {
            sipp_scenario_dir().join(name)
        };
        SippBuilder::new(Scenario::File(path))
    }

    /// A run of one of SIPp's embedded scenarios (`-sn uac`, `-sn uas`, ...).
    pub fn built_in(name: &str) -> SippBuilder {
        SippBuilder::new(Scenario::BuiltIn(name.to_owned()))
    }

    /// The process id, for logs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The folder SIPp runs in (its logs land here); removed when this handle is dropped.
    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    /// Waits for SIPp to exit, at most `timeout`; after that it is killed and the result says
    /// `timed_out`. Either way the logs SIPp wrote are collected.
    pub async fn wait(mut self, timeout: Duration) -> SippResult {
        let (status, timed_out) = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => (Some(status), false),
            Ok(Err(error)) => {
                tracing::warn!(%error, "waiting for sipp failed");
                (None, false)
            }
            Err(_elapsed) => {
                // kill() also reaps the process, so no zombie is left behind.
                if let Err(error) = self.child.kill().await {
                    tracing::warn!(%error, "cannot kill sipp after its timeout");
                }
                (None, true)
            }
        };
        let stderr = match self.stderr_reader.take() {
            Some(reader) => reader.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let work_dir = self.work_dir.path();
        SippResult {
            exit_code: status.as_ref().and_then(ExitStatus::code),
            timed_out,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            error_log: read_log(&work_dir.join("errors.log")),
            screen: read_log(&work_dir.join("screen.log")),
            messages: work_dir
                .join("messages.log")
                .exists()
                .then(|| read_log(&work_dir.join("messages.log"))),
            command_line: self.command_line.clone(),
        }
    }
}

impl fmt::Debug for Sipp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sipp")
            .field("pid", &self.child.id())
            .field("command", &self.command_line)
            .finish()
    }
}

/// A log SIPp may or may not have written; a missing file reads as empty.
fn read_log(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

impl SippBuilder {
    fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            local_ip: "127.0.0.1".to_owned(),
            local_port: None,
            remote: None,
            max_calls: None,
            service: None,
            auth_user: None,
            auth_password: None,
            variables: Vec::new(),
            global_timeout: None,
            trace_messages: false,
            extra_args: Vec::new(),
        }
    }

    /// `-p`: the local SIP port (default: SIPp picks 5060 or a free one).
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = Some(port);
        self
    }

    /// `-i`: the local address (default 127.0.0.1: nothing listens outside loopback).
    pub fn local_ip(mut self, ip: &str) -> Self {
        self.local_ip = ip.to_owned();
        self
    }

    /// The peer SIPp sends to (UAC scenarios).
    pub fn remote(mut self, remote: SocketAddr) -> Self {
        self.remote = Some(remote);
        self
    }

    /// `-m`: exit after this many calls.
    pub fn calls(mut self, max_calls: u32) -> Self {
        self.max_calls = Some(max_calls);
        self
    }

    /// `-s`: the user part of the Request-URI (the number dialed, or the extension).
    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_owned());
        self
    }

    /// `-au` / `-ap`: credentials for digest challenges.
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth_user = Some(user.to_owned());
        self.auth_password = Some(password.to_owned());
        self
    }

    /// `-set NAME VALUE`: a global variable the scenario reads as `[$NAME]`.
    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.variables.push((name.to_owned(), value.to_string()));
        self
    }

    /// `-timeout` with `-timeout_error`: SIPp quits, failing with exit code 255, after this
    /// long ([`SippResult::hit_global_timeout`]). Keep it below the [`Sipp::wait`] timeout so
    /// SIPp writes its logs before being killed.
    pub fn timeout(mut self, global_timeout: Duration) -> Self {
        self.global_timeout = Some(global_timeout);
        self
    }

    /// `-trace_msg`: keep every message sent and received in [`SippResult::messages`].
    pub fn trace_messages(mut self) -> Self {
        self.trace_messages = true;
        self
    }

    /// `-mi 127.0.0.1 -mp N`: the scenario's RTP (`[media_port]`, `play_pcap_audio`) on a
    /// loopback port of its own, so several SIPps at once do not fight over the default 6000.
    pub fn media_on_loopback(self) -> Self {
        self.arg("-mi").arg("127.0.0.1").arg("-mp").arg(crate::free_udp_port().to_string())
    }

    /// Any other SIPp argument, passed as is.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// The full argument list (without the program), with logs going to `work_dir`.
    fn args(&self, work_dir: &Path) -> Vec<String> {
        let mut args = Vec::new();
        match &self.scenario {
            Scenario::File(path) => args.extend(["-sf".to_owned(), path.display().to_string()]),
            Scenario::BuiltIn(name) => args.extend(["-sn".to_owned(), name.clone()]),
        }
        args.extend(["-i".to_owned(), self.local_ip.clone()]);
        if let Some(port) = self.local_port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        if let Some(max_calls) = self.max_calls {
            args.extend(["-m".to_owned(), max_calls.to_string()]);
        }
        if let Some(service) = &self.service {
            args.extend(["-s".to_owned(), service.clone()]);
        }
        if let Some(user) = &self.auth_user {
            args.extend(["-au".to_owned(), user.clone()]);
        }
        if let Some(password) = &self.auth_password {
            args.extend(["-ap".to_owned(), password.clone()]);
        }
        for (name, value) in &self.variables {
            args.extend(["-set".to_owned(), name.clone(), value.clone()]);
        }
        if let Some(global_timeout) = self.global_timeout {
            // Milliseconds keep sub-second timeouts exact; at least 1 ms, since 0 means "none".
            let millis = global_timeout.as_millis().max(1);
            args.extend([
                "-timeout".to_owned(),
                format!("{millis}ms"),
                "-timeout_error".to_owned(),
            ]);
        }
        // Logs go to fixed names in the private folder so the result can read them back.
        let log = |name: &str| work_dir.join(name).display().to_string();
        args.extend([
            "-trace_err".to_owned(),
            "-error_file".to_owned(),
            log("errors.log"),
        ]);
        args.extend([
            "-trace_screen".to_owned(),
            "-screen_file".to_owned(),
            log("screen.log"),
        ]);
        if self.trace_messages {
            args.extend([
                "-trace_msg".to_owned(),
                "-message_file".to_owned(),
                log("messages.log"),
            ]);
        }
        // No terminal: SIPp must not read keyboard commands from the test's stdin.
        args.push("-nostdin".to_owned());
        args.extend(self.extra_args.iter().cloned());
        if let Some(remote) = self.remote {
            args.push(remote.to_string());
        }
        args
    }

    /// Starts SIPp. Fails if the scenario file does not exist or SIPp cannot be started.
    pub fn spawn(self) -> anyhow::Result<Sipp> {
        if let Scenario::File(path) = &self.scenario
            && !path.is_file()
        {
            bail!(
                "SIPp scenario {} does not exist; scenario files live in {}",
                path.display(),
                sipp_scenario_dir().display()
            );
        }
        let work_dir = tempfile::Builder::new()
            .prefix("sipp-")
            .tempdir()
            .context("cannot create a temporary folder for SIPp's logs")?;
        let args = self.args(work_dir.path());
        let command_line = format!("{SIPP} {}", args.join(" "));
        tracing::debug!(%command_line, "starting sipp");
        let mut child = Command::new(SIPP)
            .args(&args)
            .current_dir(work_dir.path())
            .stdin(Stdio::null())
            // SIPp redraws its statistics screen on stdout; the final one is in screen.log.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("cannot start {SIPP}; install it with scripts/install-test-deps.sh (Debian package sip-tester)")
            })?;
        let stderr_reader = child.stderr.take().map(|stderr| {
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                // Read to the end so SIPp never blocks on a full pipe, keep only the start.
                let mut limited = stderr.take(STDERR_LIMIT as u64);
                let _ = limited.read_to_end(&mut bytes).await;
                let mut rest = limited.into_inner();
                let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
                bytes
            })
        });
        Ok(Sipp {
            child,
            stderr_reader,
            work_dir,
            command_line,
        })
    }
}

impl SippResult {
    /// True when SIPp exited 0: every call of the scenario succeeded.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// `Ok` when every call succeeded; otherwise an error carrying the exit code, stderr,
    /// error log and final statistics so the failing test says why.
    pub fn ensure_success(&self) -> anyhow::Result<()> {
        if self.succeeded() {
            return Ok(());
        }
        bail!("{self}")
    }

    /// Calls that completed their scenario, from the final statistics screen.
    pub fn successful_calls(&self) -> Option<u64> {
        self.cumulative_counter("Successful call")
    }

    /// Calls that failed (unexpected message, timeout), from the final statistics screen.
    pub fn failed_calls(&self) -> Option<u64> {
        self.cumulative_counter("Failed call")
    }

    /// The cumulative (last) column of a statistics screen row such as
    /// `  Successful call        |        0                  |        3       `.
    fn cumulative_counter(&self, counter: &str) -> Option<u64> {
        // The screen is dumped once per scenario screen; the statistics row appears once.
        let row = self
            .screen
            .lines()
            .find(|line| line.trim_start().starts_with(counter))?;
        let cumulative = row.rsplit('|').next()?;
        cumulative.trim().parse().ok()
    }

    /// True when SIPp stopped because its `-timeout` ran out (it then exits 255 and writes
    /// no statistics screen).
    pub fn hit_global_timeout(&self) -> bool {
        let marker = "timed out after";
        self.error_log.contains(marker) || self.stderr.contains(marker)
    }

    /// What the exit code means, in words.
    pub fn exit_meaning(&self) -> &'static str {
        if self.timed_out {
            return "killed: did not finish within the wait timeout";
        }
        match self.exit_code {
            Some(0) => "all calls succeeded",
            Some(1) => "at least one call failed",
            Some(97) => "stopped by an internal command",
            Some(99) => "stopped before any call was processed",
            Some(254) => "fatal error binding a socket",
            Some(255) if self.hit_global_timeout() => {
                "the -timeout was reached before the calls finished"
            }
            Some(255) => "fatal error (arguments or scenario)",
            Some(_) => "unknown exit code",
            None => "killed by a signal",
        }
    }
}

impl fmt::Display for SippResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sipp exit code {:?}: {}",
            self.exit_code,
            self.exit_meaning()
        )?;
        writeln!(f, "command: {}", self.command_line)?;
        for (title, text) in [
            ("stderr", &self.stderr),
            ("error log", &self.error_log),
            ("final screen", &self.screen),
        ] {
            let text = text.trim();
            if !text.is_empty() {
                writeln!(f, "--- {title} ---\n{}", tail(text, 4000))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_carries_every_option() {
        let builder = Sipp::scenario("trunk.xml")
            .local_port(5070)
            .remote("127.0.0.1:5080".parse().expect("literal address"))
            .calls(3)
            .service("13800138000")
            .auth("1001", "secret")
            .set("answer_after", 2)
            .timeout(Duration::from_millis(2500));
        let args = builder.args(Path::new("/tmp/w"));
        let line = args.join(" ");
        let scenario = sipp_scenario_dir().join("trunk.xml").display().to_string();
        assert!(
            line.starts_with(&format!(
                "-sf {scenario} -i 127.0.0.1 -p 5070 -m 3 -s 13800138000"
            )),
            "{line}"
        );
        assert!(
            line.contains("-au 1001 -ap secret -set answer_after 2"),
            "{line}"
        );
        assert!(line.contains("-timeout 2500ms -timeout_error"), "{line}");
        assert!(
            line.contains("-trace_err -error_file /tmp/w/errors.log"),
            "{line}"
        );
        assert!(!line.contains("-trace_msg"), "{line}");
        assert_eq!(args.last().map(String::as_str), Some("127.0.0.1:5080"));
    }

    #[test]
    fn counters_are_read_from_the_statistics_screen() {
        let result = SippResult {
            exit_code: Some(1),
            timed_out: false,
            stderr: String::new(),
            error_log: String::new(),
            screen: "  Total Calls created    |                           |        5                 \n\
                     -------------------------+---------------------------+--------------------------\n\
                       Successful call        |        0                  |        3                 \n\
                       Failed call            |        1                  |        2                 \n"
                .to_owned(),
            messages: None,
            command_line: "sipp".to_owned(),
        };
        assert_eq!(result.successful_calls(), Some(3));
        assert_eq!(result.failed_calls(), Some(2));
        assert!(!result.succeeded());
        assert_eq!(result.exit_meaning(), "at least one call failed");
        let empty = SippResult {
            screen: String::new(),
            ..result
        };
        assert_eq!(empty.successful_calls(), None);
    }

    #[test]
    fn missing_scenario_names_the_folder() {
        let error = Sipp::scenario("no-such-scenario.xml")
            .spawn()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no-such-scenario.xml does not exist"),
            "{error}"
        );
        assert!(error.contains("tests/sipp"), "{error}");
    }
}
