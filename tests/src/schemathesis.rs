//! Schemathesis (PyPI) against a server's OpenAPI document: the tool in a virtualenv under
//! the target directory, made on first use, and one bounded run of it.
//!
//! The virtualenv is `<target>/schemathesis-venv`, made with `python3 -m venv` and
//! `pip install schemathesis`; without PyPI the caller's test fails and says so. A run is
//! bounded: few examples per operation, a timeout per request and for the whole run, one
//! worker and a fixed seed, so a failure can be run again as it was.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::process::Command;

/// The whole schemathesis run; it normally takes about a minute.
const RUN_TIMEOUT: Duration = Duration::from_secs(420);
/// Installing schemathesis into a fresh virtualenv.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The schemathesis executable, installing it first if needed. `target_tmp` is the test's
/// `CARGO_TARGET_TMPDIR` (`target/tmp`); the virtualenv sits beside it.
pub async fn schemathesis(target_tmp: &Path) -> anyhow::Result<PathBuf> {
    let venv = target_tmp.parent().unwrap_or(target_tmp).join("schemathesis-venv");
    let exe = venv.join("bin").join("schemathesis");
    if exe.exists() {
        return Ok(exe);
    }
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .await
        .context("cannot run python3 to make a virtualenv: install python3 and python3-venv")?;
    ensure!(made.success(), "python3 -m venv {} failed: install Debian's python3-venv", venv.display());
    let pip = venv.join("bin").join("pip");
    let install = tokio::time::timeout(
        INSTALL_TIMEOUT,
        Command::new(&pip).args(["install", "--quiet", "schemathesis"]).stdin(Stdio::null()).output(),
    )
    .await;
    let output = match install {
        Ok(output) => output.context("cannot run pip in the virtualenv")?,
        Err(_) => bail!("pip install schemathesis took more than {INSTALL_TIMEOUT:?}: is PyPI reachable?"),
    };
    if !output.status.success() {
        // A half-made venv would be taken as ready next time.
        let _ = std::fs::remove_dir_all(&venv);
        bail!(
            "pip install schemathesis failed (is PyPI reachable from this machine?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    ensure!(exe.exists(), "pip installed schemathesis but {} is missing", exe.display());
    Ok(exe)
}

/// One schemathesis run against a live server.
pub struct SchemathesisRun<'a> {
    /// The document's URL, e.g. `http://127.0.0.1:8080/api/openapi.json`.
    pub document: String,
    /// The session, as a `Cookie` header value (`name=value`).
    pub cookie: &'a str,
    /// Schemathesis' `--checks` list, e.g. `not_a_server_error,response_schema_conformance`.
    pub checks: &'a str,
    /// Paths left out, e.g. the logout (it would end the session the run uses) or an
    /// endless event stream.
    pub exclude_paths: &'a [&'a str],
    /// Where the report and schemathesis' cache folder go (not the repository).
    pub workdir: &'a Path,
}

/// What a run printed.
pub struct SchemathesisOutcome {
    pub passed: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl SchemathesisRun<'_> {
    /// Runs `exe` (from [`schemathesis`]) and waits, within the run's timeout.
    pub async fn run(&self, exe: &Path) -> anyhow::Result<SchemathesisOutcome> {
        let mut command = Command::new(exe);
        command
            .arg("run")
            .arg(&self.document)
            .args(["--checks", self.checks])
            .args(["--max-examples", "15"])
            .args(["--request-timeout", "15"])
            .args(["--workers", "1"])
            .args(["--seed", "20261124"])
            .arg("-H")
            .arg(format!("Cookie: {}", self.cookie))
            .arg("--report-ndjson-path")
            .arg(self.workdir.join("schemathesis.ndjson"))
            .arg("--continue-on-failure");
        for path in self.exclude_paths {
            command.args(["--exclude-path", path]);
        }
        let run = command
            .current_dir(self.workdir)
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(RUN_TIMEOUT, run).await {
            Ok(output) => output.context("cannot run schemathesis")?,
            Err(_) => bail!("schemathesis did not finish within {RUN_TIMEOUT:?}"),
        };
        Ok(SchemathesisOutcome {
            passed: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

impl SchemathesisOutcome {
    /// Fails with the tool's report unless every check passed and operations really ran.
    pub fn ensure_clean(&self) -> anyhow::Result<()> {
        let SchemathesisOutcome { stdout, stderr, .. } = self;
        ensure!(self.passed, "schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}", self.code);
        // It must really have exercised the API, not stopped at the schema.
        ensure!(stdout.contains("passed") && !stdout.contains("Server error"), "schemathesis output:\n{stdout}");
        Ok(())
    }
}
