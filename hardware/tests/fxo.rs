//! FXO gateways: the documented profile example parses, a gateway becomes one single-channel
//! trunk per port, and the line test dials one port of a SIPp "gateway" and reports.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hardware::{
    FxoProfile, Outcome, ProfileError, TelephonyConfig, TelephonyOptions, line_test, line_test_with,
};

use common::{Sipp, free_udp_port};

fn documented_example() -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/fxo-profiles.md"),
    )
    .expect("docs/fxo-profiles.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("closed block");
    doc[start..end].to_string()
}

#[test]
fn the_documented_example_parses_into_single_channel_lines() {
    let gateways = FxoProfile::parse_all(&documented_example(), "docs/fxo-profiles.md")
        .expect("the worked example is valid");
    assert_eq!(gateways.len(), 2);
    let shop = gateways[0].trunks();
    assert_eq!(shop.len(), 4);
    assert_eq!(shop[2].0.name, "shop/3");
    assert_eq!(
        shop[2].0.address,
        "192.168.10.20:5066".parse::<SocketAddr>().expect("addr")
    );
    assert!(shop.iter().all(|(trunk, _)| trunk.channels == 1));
    assert_eq!(shop[0].0.username.as_deref(), Some("outpost"));
    let branch = &gateways[1];
    assert_eq!(branch.dial_string(2, "13800138000"), "2#13800138000");
    assert_eq!(branch.trunks()[1].0.address.port(), 5060);
    assert_eq!(
        branch.trunks()[1].1.dial_pattern.as_deref(),
        Some("2#{number}")
    );
}

#[test]
fn bad_profiles_are_refused_with_the_field_named() {
    let zero_ports = "[[gateway]]\nname = \"x\"\naddress = \"10.0.0.1\"\nports = 0\n";
    let error = FxoProfile::parse_all(zero_ports, "test").expect_err("0 ports");
    assert!(matches!(error, ProfileError::Invalid { .. }));
    assert!(error.to_string().contains("ports = 0"), "{error}");
    let typo =
        "[[gateway]]\nname = \"x\"\naddress = \"10.0.0.1\"\nports = 2\nport_sip_bsae = 5062\n";
    let error = FxoProfile::parse_all(typo, "test").expect_err("unknown field");
    assert!(error.to_string().contains("port_sip_bsae"), "{error}");
    let no_number = "[[gateway]]\nname = \"x\"\naddress = \"10.0.0.1\"\nports = 2\ndial_pattern = \"{port}#\"\n";
    assert!(FxoProfile::parse_all(no_number, "test").is_err());
}

fn config_for(gateway: &FxoProfile, dir: &Path) -> (TelephonyConfig, TelephonyOptions) {
    let mut config = TelephonyConfig::on_loopback(dir);
    let mut options = TelephonyOptions::default();
    gateway.add_to(&mut config, &mut options);
    (config, options)
}

#[tokio::test]
async fn line_test_dials_the_chosen_port_and_reports() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A two-port "gateway": SIPp processes on consecutive even ports stand in for the ports.
    let base = loop {
        let candidate = free_udp_port() & !1;
        if std::net::UdpSocket::bind(("127.0.0.1", candidate + 2)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", candidate)).is_ok()
        {
            break candidate;
        }
    };
    let profile = format!(
        "[[gateway]]\nname = \"gw\"\naddress = \"127.0.0.1\"\nports = 2\nport_sip_base = {base}\nport_sip_step = 2\n"
    );
    let gateway = FxoProfile::parse_all(&profile, "test")?.remove(0);
    let (config, options) = config_for(&gateway, dir.path());
    // Port 2 is busy; port 1 must not be touched (no SIPp there would answer).
    let port2 = Sipp::start(
        "port2",
        "carrier_busy.xml",
        base + 2,
        free_udp_port(),
        &[],
        dir.path(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = line_test_with(&config, &options, "gw/2", "10086", Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::Busy, "{report:?}");
    assert!(report.summary.contains("gw/2"), "{}", report.summary);
    assert!(report.total < Duration::from_secs(10));
    port2.finish(Duration::from_secs(5)).await?;

    // Answered: held two seconds, then hung up by the test itself.
    let port1 = Sipp::start(
        "port1",
        "carrier_answer_wait.xml",
        base,
        free_udp_port(),
        &[],
        dir.path(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = line_test(&config, "gw/1", "10010").await;
    assert_eq!(report.outcome, Outcome::Answered, "{report:?}");
    assert!(
        report.ringing_after.is_some() && report.answered_after.is_some(),
        "{report:?}"
    );
    port1.finish(Duration::from_secs(5)).await?;

    // An unknown line is reported, not a panic.
    let report = line_test(&config, "gw/9", "10010").await;
    assert_eq!(report.outcome, Outcome::Failed { status: 0 });
    assert!(
        report.summary.contains("gw/1"),
        "lists the configured lines: {}",
        report.summary
    );
    Ok(())
}
