//! The harness of the SIPp call tests (`sipp_calls.rs`, `sipp_agents.rs`; `baresip.rs` takes
//! its recording check from here): lines on loopback with one trunk toward a SIPp carrier and
//! one agent extension, SIPp carriers and agent phones, and the waits and checks the tests share.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use hardware::{
    CallId, DialRequest, ExtensionConfig, HangupSide, LineEvent, Outcome, Telephony,
    TelephonyConfig, TelephonyOptions, TrunkConfig,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::common::{Sipp, free_udp_port};

pub const EXTENSION: &str = "1001";
pub const PASSWORD: &str = "s3cret-1001";

pub struct Harness {
    pub telephony: Telephony,
    pub events: UnboundedReceiver<LineEvent>,
    pub carrier_port: u16,
    pub dir: tempfile::TempDir,
}

pub async fn start_telephony() -> anyhow::Result<Harness> {
    start_telephony_with(TelephonyOptions::default()).await
}

pub async fn start_telephony_with(options: TelephonyOptions) -> anyhow::Result<Harness> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("hardware=debug")
        .try_init();
    let dir = tempfile::tempdir()?;
    let carrier_port = free_udp_port();
    let config = TelephonyConfig {
        trunks: vec![TrunkConfig::on_loopback("carrier", carrier_port, 4)],
        extensions: vec![ExtensionConfig {
            extension: EXTENSION.into(),
            password: PASSWORD.into(),
        }],
        ..TelephonyConfig::on_loopback(dir.path())
    };
    let (telephony, events) = Telephony::start_with(config, options).await?;
    Ok(Harness {
        telephony,
        events,
        carrier_port,
        dir,
    })
}

impl Harness {
    pub fn dial(&self, call: u64, ring_timeout: Duration) {
        self.telephony.dial(DialRequest {
            call: CallId(call),
            trunk: "carrier".into(),
            number: "13800138000".into(),
            caller_id: "02155550000".into(),
            ring_timeout,
        });
    }

    /// Events until (and including) the first one `stop` accepts.
    pub async fn events_until(
        &mut self,
        timeout: Duration,
        stop: impl Fn(&LineEvent) -> bool,
    ) -> anyhow::Result<Vec<LineEvent>> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => bail!("event channel closed; seen {seen:?}"),
                Err(_) => bail!("timed out after {timeout:?}; seen {seen:?}"),
            };
            let done = stop(&event);
            seen.push(event);
            if done {
                return Ok(seen);
            }
        }
    }

    pub fn sipp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIPp playing the carrier with `scenario` on the trunk's port.
    pub fn carrier(&self, scenario: &str, extra: &[String]) -> Sipp {
        Sipp::start(
            "carrier",
            scenario,
            self.carrier_port,
            free_udp_port(),
            extra,
            self.sipp_dir(),
        )
    }

    /// SIPp playing the agent's phone (answering side) with `scenario` on `port`.
    pub fn agent(&self, scenario: &str, port: u16, extra: &[String]) -> Sipp {
        Sipp::start("agent", scenario, port, free_udp_port(), extra, self.sipp_dir())
    }

    /// An agent's own call: dials and offers it to the agent's phone at once, while the
    /// customer still rings.
    pub fn dial_own_call(&self, call: u64) {
        self.dial(call, Duration::from_secs(20));
        self.telephony
            .bridge(CallId(call), EXTENSION, Duration::from_secs(10), true);
    }

    /// An answering agent phone on `port` whose SDP names a socket the test reads
    /// (`-key rtp_port`), so the test sees exactly what the agent hears.
    pub async fn listening_agent(
        &self,
        scenario: &str,
        port: u16,
    ) -> anyhow::Result<(Sipp, tokio::net::UdpSocket)> {
        let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let agent = self.agent(
            scenario,
            port,
            &[
                "-key".into(),
                "rtp_port".into(),
                rtp.local_addr()?.port().to_string(),
            ],
        );
        Ok((agent, rtp))
    }

    /// Registers the agent phone with SIPp; the phone's INVITEs go to `contact_port`.
    pub async fn register_agent(&mut self, contact_port: u16) -> anyhow::Result<()> {
        let register = Sipp::start(
            "agent_register",
            "agent_register.xml",
            free_udp_port(),
            free_udp_port(),
            &registration_args(self.telephony.local_sip_addr(), PASSWORD, contact_port),
            self.sipp_dir(),
        );
        register.finish(Duration::from_secs(15)).await?;
        let events = self
            .events_until(Duration::from_secs(5), |event| {
                matches!(event, LineEvent::ExtensionRegistered { .. })
            })
            .await?;
        let Some(LineEvent::ExtensionRegistered { extension, contact }) = events.last() else {
            unreachable!("stop condition")
        };
        assert_eq!(extension, EXTENSION);
        assert_eq!(*contact, SocketAddr::from(([127, 0, 0, 1], contact_port)));
        assert_eq!(
            self.telephony.registered_extensions(),
            vec![EXTENSION.to_string()]
        );
        Ok(())
    }
}

pub fn registration_args(appliance: SocketAddr, password: &str, contact_port: u16) -> Vec<String> {
    vec![
        appliance.to_string(),
        "-s".into(),
        EXTENSION.into(),
        "-au".into(),
        EXTENSION.into(),
        "-ap".into(),
        password.into(),
        "-key".into(),
        "contact_port".into(),
        contact_port.to_string(),
    ]
}

/// The last of `events` is the call's end with this outcome and hang-up side.
pub fn assert_ended_as(events: &[LineEvent], outcome: Outcome, hangup_side: Option<HangupSide>) {
    assert!(
        matches!(
            events.last(),
            Some(LineEvent::Ended { outcome: o, hangup_side: h, .. }) if *o == outcome && *h == hangup_side
        ),
        "expected the call to end {outcome:?} / {hangup_side:?}: {events:?}"
    );
}

pub fn ended(event: &LineEvent) -> bool {
    matches!(event, LineEvent::Ended { .. })
}

/// Peak absolute sample per channel of a two-channel A-law WAV (the recorder's format:
/// a 58-byte header, then one A-law byte per channel per frame).
pub fn channel_peaks(path: &Path) -> anyhow::Result<(i32, i32)> {
    let bytes = std::fs::read(path)?;
    anyhow::ensure!(bytes.len() >= 58 && &bytes[..4] == b"RIFF" && &bytes[50..54] == b"data", "not a recording: {path:?}");
    let format = u16::from_le_bytes([bytes[20], bytes[21]]);
    let channels = u16::from_le_bytes([bytes[22], bytes[23]]);
    anyhow::ensure!((format, channels) == (6, 2), "format {format}, {channels} channels");
    let mut peaks = (0i32, 0i32);
    for frame in bytes[58..].chunks_exact(2) {
        peaks.0 = peaks.0.max(i32::from(hardware::g711::alaw_to_linear(frame[0])).abs());
        peaks.1 = peaks.1.max(i32::from(hardware::g711::alaw_to_linear(frame[1])).abs());
    }
    Ok(peaks)
}

/// Dials, waits for the answer and offers the call to the registered agent.
pub async fn answer_and_bridge(
    harness: &mut Harness,
    call: u64,
    ring_timeout: Duration,
) -> anyhow::Result<()> {
    harness.dial(call, Duration::from_secs(20));
    harness
        .events_until(Duration::from_secs(15), |event| {
            matches!(event, LineEvent::Answered { .. })
        })
        .await?;
    harness
        .telephony
        .bridge(CallId(call), EXTENSION, ring_timeout, true);
    Ok(())
}
