//! The Debian packages, as a technician meets them: both are built with `cargo deb` from
//! the binaries the suite already built, installed with `dpkg -i` on this machine, checked
//! (files, permissions, service accounts, `systemd-analyze verify` of the units), run from
//! their installed paths as their service accounts (the hub's first admin logs in with the
//! password from the root-only file the install wrote; the box answers `/readyz` and stops
//! on SIGTERM), and purged.
//!
//! Needs root (dpkg) and `cargo-deb` (`scripts/install-test-deps.sh` installs it). The test
//! purges any earlier install of the two packages first, and leaves the machine as it found
//! it: packages, accounts, state directories and password files removed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tests::{free_tcp_port, free_udp_port, wait_for_some, wait_until};

const PACKAGES: [(&str, &str); 2] = [("appliance", "outpost-appliance"), ("hq-hub", "outpost-hub")];
const HUB_PASSWORD_FILE: &str = "/root/outpost-hub-admin-password";
const SITE_PASSWORD_FILE: &str = "/root/outpost-site-admin-password";
const STATE_DIRS: [&str; 2] = ["/var/lib/outpost", "/var/lib/outpost-hub"];

fn run(program: &str, args: &[&str]) -> Result<Output> {
    let output = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    ensure!(
        output.status.success(),
        "{program} {}: {}\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Removes what an install leaves (after the packages are purged).
fn clean_machine() {
    for (_, package) in PACKAGES {
        let _ = Command::new("dpkg").args(["--purge", package]).output();
    }
    for dir in STATE_DIRS {
        let _ = std::fs::remove_dir_all(dir);
    }
    for file in [HUB_PASSWORD_FILE, SITE_PASSWORD_FILE] {
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_dir("/etc/outpost");
}

/// Builds the workspace's binaries as the suite does (fresh inside it), then both packages
/// from them, into `out`.
fn build_packages(out: &Path) -> Result<Vec<PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?;
    let status = Command::new(&cargo)
        .current_dir(workspace)
        .args(["build", "--workspace", "--bins", "--tests"])
        .status()
        .context("cargo build")?;
    ensure!(status.success(), "cargo build: {status}");
    let mut debs = Vec::new();
    for (crate_name, package) in PACKAGES {
        let output = Command::new(&cargo)
            .current_dir(workspace)
            .args(["deb", "-p", crate_name, "--no-build", "--profile", "dev", "--fast", "--output"])
            .arg(out)
            .output()
            .context("cargo deb (install it with: cargo install cargo-deb)")?;
        ensure!(output.status.success(), "cargo deb -p {crate_name}: {}", text(&output));
        let deb = std::fs::read_dir(out)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(package) && n.ends_with(".deb")))
            .with_context(|| format!("no {package}*.deb in {}", out.display()))?;
        debs.push(deb);
    }
    Ok(debs)
}

fn mode_owner(path: &str) -> Result<(u32, String, String)> {
    let output = run("stat", &["-c", "%a %U %G", path])?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut parts = line.split(' ');
    let mode = u32::from_str_radix(parts.next().context("mode")?, 8)?;
    Ok((mode, parts.next().context("user")?.to_owned(), parts.next().context("group")?.to_owned()))
}

/// A program started as a service account, stopped with SIGTERM when dropped.
struct Service {
    child: std::process::Child,
    log: PathBuf,
}

impl Service {
    fn start(user: &str, program: &str, args: &[&str], log: PathBuf) -> Result<Service> {
        let file = std::fs::File::create(&log)?;
        // setpriv execs the program itself (runuser would stay its parent and answer the
        // SIGTERM in its place), as systemd's User= does.
        let child = Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "--", program])
            .args(args)
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("setpriv {program}"))?;
        Ok(Service { child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (what `systemctl stop` sends), then its exit status within `limit`.
    fn terminate(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        run("kill", &["-TERM", &self.child.id().to_string()])?;
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                bail!("still running {limit:?} after SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check_installed_files() -> Result<()> {
    for (path, mode, user, group) in [
        ("/usr/bin/appliance", 0o755, "root", "root"),
        ("/usr/bin/hq-hub", 0o755, "root", "root"),
        ("/etc/outpost/appliance.toml", 0o640, "root", "outpost"),
        ("/etc/outpost/hub.toml", 0o640, "root", "outpost-hub"),
        ("/var/lib/outpost", 0o750, "outpost", "outpost"),
        ("/var/lib/outpost-hub", 0o750, "outpost-hub", "outpost-hub"),
        (HUB_PASSWORD_FILE, 0o600, "root", "root"),
        (SITE_PASSWORD_FILE, 0o600, "root", "root"),
    ] {
        assert_eq!(mode_owner(path)?, (mode, user.to_owned(), group.to_owned()), "{path}");
    }
    for user in ["outpost", "outpost-hub"] {
        let entry = String::from_utf8(run("getent", &["passwd", user])?.stdout)?;
        assert!(entry.trim_end().ends_with("/usr/sbin/nologin"), "a system account without a shell: {entry}");
    }
    for unit in ["outpost-appliance", "outpost-hub"] {
        let path = ["/lib/systemd/system", "/usr/lib/systemd/system"]
            .iter()
            .map(|dir| format!("{dir}/{unit}.service"))
            .find(|path| Path::new(path).is_file())
            .with_context(|| format!("{unit}.service not installed"))?;
        let verify = Command::new("systemd-analyze").args(["verify", &path]).output()?;
        // `verify` also reports other units of this machine it loads; only ours must be clean.
        let complaints: Vec<String> =
            text(&verify).lines().filter(|line| line.contains(unit)).map(str::to_owned).collect();
        assert!(complaints.is_empty(), "systemd-analyze verify {path}:\n{}", text(&verify));
        let unit_text = std::fs::read_to_string(&path)?;
        for needed in ["StateDirectory=", "Restart=on-failure", "CAP_NET_BIND_SERVICE", "/etc/outpost/"] {
            assert!(unit_text.contains(needed), "{path} lacks {needed}");
        }
    }
    Ok(())
}

async fn hub_runs_from_its_install(work: &Path) -> Result<()> {
    let password = std::fs::read_to_string(HUB_PASSWORD_FILE)?.trim().to_owned();
    let http = format!("127.0.0.1:{}", free_tcp_port());
    let sync = format!("127.0.0.1:{}", free_udp_port());
    let checked = run("/usr/bin/hq-hub", &["check-config", "--config", "/etc/outpost/hub.toml"])?;
    assert!(text(&checked).contains("/var/lib/outpost-hub"), "{}", text(&checked));
    // The unit's command, on this test's ports (flags win over the file).
    let args = ["serve", "--config", "/etc/outpost/hub.toml", "--http", &http, "--sync", &sync];
    let mut hub = Service::start("outpost-hub", "/usr/bin/hq-hub", &args, work.join("hub.log"))?;
    let client = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(10)).build()?;
    let base = format!("http://{http}");
    wait_until(Duration::from_secs(30), || async { client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) })
        .await
        .with_context(|| format!("the installed hub never got ready\n{}", hub.log()))?;
    let login = client.post(format!("{base}/api/login")).json(&json!({"username": "admin", "password": password})).send().await?;
    assert!(login.status().is_success(), "the first admin's password from {HUB_PASSWORD_FILE}: {}", login.status());
    let status = hub.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "the hub's exit after SIGTERM: {status}\n{}", hub.log());
    assert!(!hub.log().contains(&password), "the hub logged the admin's password");
    Ok(())
}

async fn box_runs_from_its_install(work: &Path) -> Result<()> {
    let password = std::fs::read_to_string(SITE_PASSWORD_FILE)?.trim().to_owned();
    let http = format!("127.0.0.1:{}", free_tcp_port());
    let sip = format!("127.0.0.1:{}", free_udp_port());
    let rtp = free_udp_port();
    // The technician's settings, checked with the installed binary before the start.
    let config = format!("http_bind = \"{http}\"\nsip_bind = \"{sip}\"\npublic_ip = \"127.0.0.1\"\nrtp_ports = [{rtp}, {}]\n", rtp + 3);
    std::fs::write("/etc/outpost/appliance.toml", config)?;
    let checked = run("/usr/bin/appliance", &["check-config", "--data", "/var/lib/outpost", "--config", "/etc/outpost/appliance.toml"])?;
    assert!(text(&checked).contains("configuration ok"), "{}", text(&checked));
    std::fs::write("/etc/outpost/bad.toml", "stop_grace_seconds = 500\n")?;
    let bad = Command::new("/usr/bin/appliance").args(["check-config", "--config", "/etc/outpost/bad.toml"]).output()?;
    assert!(!bad.status.success() && text(&bad).contains("stop_grace_seconds"), "{}", text(&bad));
    std::fs::remove_file("/etc/outpost/bad.toml")?;

    let args = ["run", "--data", "/var/lib/outpost", "--config", "/etc/outpost/appliance.toml"];
    let mut site = Service::start("outpost", "/usr/bin/appliance", &args, work.join("box.log"))?;
    let client = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(10)).build()?;
    let base = format!("http://{http}");
    let ready = wait_for_some(Duration::from_secs(30), || async {
        let response = client.get(format!("{base}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())?;
        response.json::<Value>().await.ok()
    })
    .await
    .with_context(|| format!("the installed box never got ready\n{}", site.log()))?;
    assert_eq!((ready["sip"].as_str(), ready["store"].as_str()), (Some("bound"), Some("ok")), "{ready}");
    let login = client.post(format!("{base}/api/login")).json(&json!({"username": "admin", "password": password})).send().await?;
    assert!(login.status().is_success(), "the site admin's password from {SITE_PASSWORD_FILE}: {}", login.status());
    let status = site.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "the box's exit after SIGTERM: {status}\n{}", site.log());
    assert!(site.log().contains("stopped"), "{}", site.log());
    Ok(())
}

#[tokio::test]
async fn both_packages_install_run_as_services_and_purge() -> Result<()> {
    ensure!(is_root(), "the package test installs with dpkg: run the suite as root (CI does)");
    clean_machine();
    let work = tempfile::tempdir()?;
    let debs = build_packages(work.path())?;
    let mut install = vec!["-i"];
    install.extend(debs.iter().filter_map(|deb| deb.to_str()));
    let installed = run("dpkg", &install);
    let result = async {
        let installed = installed?;
        let log = text(&installed);
        check_installed_files()?;
        for file in [HUB_PASSWORD_FILE, SITE_PASSWORD_FILE] {
            let password = std::fs::read_to_string(file)?.trim().to_owned();
            ensure!(password.len() >= 12, "{file}: {password:?}");
            ensure!(!log.contains(&password), "dpkg's output shows the password of {file}:\n{log}");
            ensure!(log.contains(file), "the install names {file}:\n{log}");
        }
        hub_runs_from_its_install(work.path()).await?;
        box_runs_from_its_install(work.path()).await?;

        run("dpkg", &["--purge", "outpost-appliance", "outpost-hub"])?;
        for path in ["/usr/bin/appliance", "/usr/bin/hq-hub", "/etc/outpost/appliance.toml", "/etc/outpost/hub.toml"] {
            ensure!(!Path::new(path).exists(), "{path} left after the purge");
        }
        for user in ["outpost", "outpost-hub"] {
            ensure!(!Command::new("getent").args(["passwd", user]).status()?.success(), "account {user} left after the purge");
        }
        // The data stays until a technician removes it (it may be the only copy of calls).
        ensure!(Path::new("/var/lib/outpost/site.db").is_file(), "the purge removed the box's data");
        Ok(())
    }
    .await;
    clean_machine();
    result
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
