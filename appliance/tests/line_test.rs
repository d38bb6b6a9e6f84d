//! The technician's `appliance line-test` command against SIPp playing the carrier: a line
//! that answers (or is busy) is reported working with exit code 0; a line whose carrier
//! answers 503 is reported failed, with the SIP status, and exit code 1. The configuration is
//! a real `appliance.toml` in a data directory, as on a box.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/src/ports.rs"]
mod ports;
use ports::free_udp_port;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sipp").join(name)
}

/// SIPp answering one call with `name`; killed on drop.
struct Carrier(Child);

impl Carrier {
    fn start(name: &str, port: u16, dir: &Path) -> Carrier {
        let child = Command::new("/usr/bin/sipp")
            .arg("-sf")
            .arg(scenario(name))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mi", "127.0.0.1"])
            .args(["-mp", &free_udp_port().to_string(), "-m", "1", "-d", "500", "-timeout", "30s", "-nostdin"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp starts (Debian package sip-tester)");
        // SIPp binds its port before reading the scenario's first message; give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        Carrier(child)
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn line_test(data: &Path, line: &str) -> Output {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_appliance"))
        .args(["line-test", "--data"])
        .arg(data)
        .args(["--line", line, "--number", "13800138000", "--ring-seconds", "10"])
        .output()
        .expect("the appliance command runs");
    assert!(started.elapsed() < Duration::from_secs(60), "the line test is bounded");
    output
}

fn data_dir(carrier_port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("appliance.toml"),
        format!(
            "sip_bind = \"127.0.0.1:0\"\npublic_ip = \"127.0.0.1\"\n\n[[trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:{carrier_port}\"\nchannels = 2\n"
        ),
    )
    .expect("write appliance.toml");
    dir
}

#[test]
fn a_working_line_is_reported_working() {
    for (scenario, says) in [("carrier_answer.xml", "已接通"), ("carrier_busy.xml", "忙")] {
        let port = free_udp_port();
        let dir = data_dir(port);
        let _carrier = Carrier::start(scenario, port, dir.path());
        let output = line_test(dir.path(), "carrier");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{scenario}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("线路 carrier 正常") && stdout.contains(says), "{scenario}: {stdout}");
        assert!(stdout.contains("ringing after") && stdout.contains("total"), "{stdout}");
    }
}

#[test]
fn a_failing_line_or_an_unknown_name_is_reported_failed() {
    let port = free_udp_port();
    let dir = data_dir(port);
    let _carrier = Carrier::start("carrier_503.xml", port, dir.path());
    let output = line_test(dir.path(), "carrier");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("故障") && stdout.contains("503"), "{stdout}");

    let output = line_test(dir.path(), "gw9/1");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("no line named \"gw9/1\"") && stdout.contains("carrier"), "{stdout}");
}
