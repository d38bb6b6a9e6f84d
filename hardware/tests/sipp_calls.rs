//! Telephony against real SIP peers: SIPp plays the carrier and the agent phones on loopback.
//!
//! Each test starts a [`Telephony`] on a free port, one or more SIPp processes with the
//! scenarios in `tests/sipp/`, drives a call through the public API and asserts the
//! [`LineEvent`]s, the recording, and that every SIPp scenario completed (exit status 0).
//! SIPp processes are killed on drop; every wait has a timeout.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hardware::{
    CallId, DialRequest, ExtensionConfig, HangupSide, LineEvent, LockoutPolicy, Outcome, Telephony,
    TelephonyConfig, TelephonyOptions, TrunkConfig,
};
use tokio::sync::mpsc::UnboundedReceiver;

use common::{Sipp, free_udp_port};

const EXTENSION: &str = "1001";
const PASSWORD: &str = "s3cret-1001";

struct Harness {
    telephony: Telephony,
    events: UnboundedReceiver<LineEvent>,
    carrier_port: u16,
    dir: tempfile::TempDir,
}

async fn start_telephony() -> anyhow::Result<Harness> {
    start_telephony_with(TelephonyOptions::default()).await
}

async fn start_telephony_with(options: TelephonyOptions) -> anyhow::Result<Harness> {
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
    fn dial(&self, call: u64, ring_timeout: Duration) {
        self.telephony.dial(DialRequest {
            call: CallId(call),
            trunk: "carrier".into(),
            number: "13800138000".into(),
            caller_id: "02155550000".into(),
            ring_timeout,
        });
    }

    /// Events until (and including) the first one `stop` accepts.
    async fn events_until(
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

    fn sipp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIPp playing the carrier with `scenario` on the trunk's port.
    fn carrier(&self, scenario: &str, extra: &[String]) -> Sipp {
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
    fn agent(&self, scenario: &str, port: u16, extra: &[String]) -> Sipp {
        Sipp::start("agent", scenario, port, free_udp_port(), extra, self.sipp_dir())
    }

    /// An agent's own call: dials and offers it to the agent's phone at once, while the
    /// customer still rings.
    fn dial_own_call(&self, call: u64) {
        self.dial(call, Duration::from_secs(20));
        self.telephony
            .bridge(CallId(call), EXTENSION, Duration::from_secs(10), true);
    }

    /// An answering agent phone on `port` whose SDP names a socket the test reads
    /// (`-key rtp_port`), so the test sees exactly what the agent hears.
    async fn listening_agent(
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
    async fn register_agent(&mut self, contact_port: u16) -> anyhow::Result<()> {
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

fn registration_args(appliance: SocketAddr, password: &str, contact_port: u16) -> Vec<String> {
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
fn assert_ended_as(events: &[LineEvent], outcome: Outcome, hangup_side: Option<HangupSide>) {
    assert!(
        matches!(
            events.last(),
            Some(LineEvent::Ended { outcome: o, hangup_side: h, .. }) if *o == outcome && *h == hangup_side
        ),
        "expected the call to end {outcome:?} / {hangup_side:?}: {events:?}"
    );
}

fn ended(event: &LineEvent) -> bool {
    matches!(event, LineEvent::Ended { .. })
}

/// Peak absolute sample per channel of a two-channel WAV.
fn channel_peaks(path: &Path) -> anyhow::Result<(i32, i32)> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let mut peaks = (0i32, 0i32);
    for (idx, sample) in reader.samples::<i16>().enumerate() {
        let magnitude = i32::from(sample?).abs();
        if idx % 2 == 0 {
            peaks.0 = peaks.0.max(magnitude);
        } else {
            peaks.1 = peaks.1.max(magnitude);
        }
    }
    Ok(peaks)
}

#[tokio::test]
async fn busy_customer_ends_busy_and_is_acked() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let carrier = harness.carrier("carrier_busy.xml", &[]);
    harness.dial(1, Duration::from_secs(20));
    let events = harness.events_until(Duration::from_secs(15), ended).await?;
    let Some(LineEvent::Ended {
        call,
        outcome,
        hangup_side,
        recording,
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(
        (*call, *outcome, *hangup_side),
        (CallId(1), Outcome::Busy, None)
    );
    assert!(recording.is_none());
    carrier.finish(Duration::from_secs(10)).await
}

#[tokio::test]
async fn unanswered_customer_is_cancelled_at_ring_timeout() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let carrier = harness.carrier("carrier_noanswer.xml", &[]);
    harness.dial(2, Duration::from_millis(1500));
    let events = harness.events_until(Duration::from_secs(15), ended).await?;
    assert!(
        matches!(events.first(), Some(LineEvent::Ringing { call: CallId(2) })),
        "{events:?}"
    );
    let Some(LineEvent::Ended {
        outcome,
        hangup_side,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(
        (*outcome, *hangup_side),
        (Outcome::NoAnswer, Some(HangupSide::System))
    );
    carrier.finish(Duration::from_secs(10)).await
}

#[tokio::test]
async fn answered_call_is_bridged_to_registered_agent_and_recorded() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    let agent = harness.agent("agent_answer.xml", agent_port, &[]);
    let carrier = harness.carrier("carrier_answer.xml", &["-d".into(), "3000".into()]);
    harness.dial(3, Duration::from_secs(20));
    let before_answer = harness
        .events_until(Duration::from_secs(15), |event| {
            matches!(event, LineEvent::Answered { .. })
        })
        .await?;
    assert!(
        matches!(
            before_answer.first(),
            Some(LineEvent::Ringing { call: CallId(3) })
        ),
        "{before_answer:?}"
    );
    harness
        .telephony
        .bridge(CallId(3), EXTENSION, Duration::from_secs(10), true);
    let events = harness.events_until(Duration::from_secs(20), ended).await?;
    assert!(events.iter().any(|event| matches!(event, LineEvent::AgentRinging { call: CallId(3), extension } if extension == EXTENSION)), "{events:?}");
    assert!(events.iter().any(|event| matches!(event, LineEvent::Bridged { call: CallId(3), extension } if extension == EXTENSION)), "{events:?}");
    let Some(LineEvent::Ended {
        outcome,
        hangup_side,
        recording,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(
        (*outcome, *hangup_side),
        (Outcome::Answered, Some(HangupSide::Customer))
    );
    let recording = recording
        .as_ref()
        .context("a bridged call has a recording")?;
    let bytes = std::fs::read(&recording.path)?;
    assert_eq!(recording.bytes, bytes.len() as u64);
    use sha2::Digest as _;
    assert_eq!(recording.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert!(
        recording.duration_ms >= 1500,
        "about 3 s of talk, got {} ms",
        recording.duration_ms
    );
    let (customer_peak, agent_peak) = channel_peaks(&recording.path)?;
    assert!(
        customer_peak > 1000,
        "customer channel is silent (peak {customer_peak})"
    );
    assert!(
        agent_peak > 1000,
        "agent channel is silent (peak {agent_peak})"
    );
    carrier.finish(Duration::from_secs(15)).await?;
    agent.finish(Duration::from_secs(15)).await
}

#[tokio::test]
async fn busy_agent_is_missed_and_the_waiting_customer_can_be_hung_up() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    let agent = harness.agent("agent_busy.xml", agent_port, &[]);
    let carrier = harness.carrier("carrier_answer_wait.xml", &[]);
    harness.dial(4, Duration::from_secs(20));
    harness
        .events_until(Duration::from_secs(15), |event| {
            matches!(event, LineEvent::Answered { .. })
        })
        .await?;
    harness.telephony.hold(CallId(4));
    harness
        .telephony
        .bridge(CallId(4), EXTENSION, Duration::from_secs(10), false);
    let events = harness
        .events_until(Duration::from_secs(15), |event| {
            matches!(
                event,
                LineEvent::AgentMissed { .. } | LineEvent::Ended { .. }
            )
        })
        .await?;
    assert!(
        matches!(
            events.last(),
            Some(LineEvent::AgentMissed {
                call: CallId(4),
                ..
            })
        ),
        "{events:?}"
    );
    // An extension nobody registered is missed at once.
    harness
        .telephony
        .bridge(CallId(4), "1999", Duration::from_secs(10), false);
    let events = harness
        .events_until(Duration::from_secs(5), |event| {
            matches!(
                event,
                LineEvent::AgentMissed { .. } | LineEvent::Ended { .. }
            )
        })
        .await?;
    assert!(
        matches!(events.last(), Some(LineEvent::AgentMissed { extension, .. }) if extension == "1999"),
        "{events:?}"
    );
    harness.telephony.hangup(CallId(4));
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    let Some(LineEvent::Ended {
        outcome,
        hangup_side,
        recording,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(
        (*outcome, *hangup_side),
        (Outcome::Abandoned, Some(HangupSide::System))
    );
    assert!(recording.is_none());
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await
}

#[tokio::test]
async fn registrar_refuses_wrong_password_and_unprovisioned_extension() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let refused = Sipp::start(
        "wrong_password",
        "agent_register_refused.xml",
        free_udp_port(),
        free_udp_port(),
        &registration_args(
            harness.telephony.local_sip_addr(),
            "not-the-password",
            free_udp_port(),
        ),
        harness.sipp_dir(),
    );
    refused.finish(Duration::from_secs(15)).await?;
    // Deprovision 1001: even the right password is refused now.
    harness.telephony.set_extensions(vec![ExtensionConfig {
        extension: "2002".into(),
        password: "x".into(),
    }]);
    let refused = Sipp::start(
        "unprovisioned",
        "agent_register_refused.xml",
        free_udp_port(),
        free_udp_port(),
        &registration_args(
            harness.telephony.local_sip_addr(),
            PASSWORD,
            free_udp_port(),
        ),
        harness.sipp_dir(),
    );
    refused.finish(Duration::from_secs(15)).await?;
    assert!(harness.telephony.registered_extensions().is_empty());
    assert!(
        harness.events.try_recv().is_err(),
        "no registration event for refused phones"
    );
    Ok(())
}

#[tokio::test]
async fn garbage_and_inbound_invites_leave_the_driver_working() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let sip = harness.telephony.local_sip_addr();
    // Async socket: a blocking receive would stall the test runtime the driver runs on.
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let junk: Vec<Vec<u8>> = vec![
        vec![0xff; 1200],
        b"\r\n\r\n".to_vec(),
        b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: unknown\r\nCSeq: 1 INVITE\r\nContent-Length: 9999\r\n\r\n".to_vec(),
        (0..=255u8).cycle().take(5000).collect(),
    ];
    for packet in &junk {
        attacker.send_to(packet, sip).await?;
    }
    // An INVITE from outside (toll-fraud attempt) is refused with 403.
    let attacker_addr = attacker.local_addr()?;
    let invite =
        sip_core::Request::new(sip_core::Method::Invite, format!("sip:0085212345678@{sip}"))
            .with_header(
                "Via",
                format!("SIP/2.0/UDP {attacker_addr};branch=z9hG4bKfraud1"),
            )
            .with_header("From", format!("<sip:fraud@{attacker_addr}>;tag=f1"))
            .with_header("To", "<sip:0085212345678@outpost>")
            .with_header("Call-ID", "fraud-1")
            .with_header("CSeq", "1 INVITE")
            .with_header("Max-Forwards", "70");
    attacker.send_to(&invite.to_bytes(), sip).await?;
    let mut buffer = [0u8; 4096];
    let (n_bytes, _) =
        tokio::time::timeout(Duration::from_secs(3), attacker.recv_from(&mut buffer))
            .await
            .context("no answer to the inbound INVITE within 3 s")??;
    let Ok(sip_core::Message::Response(response)) = sip_core::parse(&buffer[..n_bytes]) else {
        bail!("not a SIP response")
    };
    assert_eq!(response.status, 403);

    // The driver still places calls.
    let carrier = harness.carrier("carrier_busy.xml", &[]);
    harness.dial(6, Duration::from_secs(20));
    let events = harness.events_until(Duration::from_secs(15), ended).await?;
    assert!(
        matches!(
            events.last(),
            Some(LineEvent::Ended {
                outcome: Outcome::Busy,
                ..
            })
        ),
        "{events:?}"
    );
    carrier.finish(Duration::from_secs(10)).await
}

/// Dials, waits for the answer and offers the call to the registered agent.
async fn answer_and_bridge(
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

#[tokio::test]
async fn agent_holds_resumes_and_hangs_up_first() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    let agent = harness.agent("agent_hold_resume.xml", agent_port, &[]);
    // The customer's RTP port is a socket of the test's: what the customer hears is counted.
    let customer_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let carrier = harness.carrier("carrier_answer_listen.xml", &[
            "-key".into(),
            "rtp_port".into(),
            customer_rtp.local_addr()?.port().to_string(),
        ]);
    let heard = tokio::spawn(async move {
        let mut buffer = vec![0u8; 2048];
        let mut packets = 0u32;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(4), customer_rtp.recv_from(&mut buffer)).await
        {
            packets += 1;
        }
        packets
    });
    answer_and_bridge(&mut harness, 21, Duration::from_secs(10)).await?;
    let events = harness.events_until(Duration::from_secs(20), ended).await?;
    assert!(
        events
            .iter()
            .any(|event| matches!(event, LineEvent::Bridged { .. })),
        "{events:?}"
    );
    let Some(LineEvent::Ended {
        outcome,
        hangup_side,
        recording,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(
        (*outcome, *hangup_side),
        (Outcome::Answered, Some(HangupSide::Agent))
    );
    assert!(recording.is_some(), "a bridged call is recorded");
    // The agent's BYE ended the customer leg too: the carrier got our BYE.
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await?;
    // The agent's phone sends no audio, so all the customer hears is the hold audio of the
    // 0.5 s hold (about 25 packets): not silence, and not after the resume (1.5 s more).
    let packets = heard.await?;
    assert!(
        (10..=60).contains(&packets),
        "the customer heard {packets} packets; expected hold audio during the agent's 0.5 s hold only"
    );
    Ok(())
}

#[tokio::test]
async fn customer_hangs_up_while_the_agent_rings_and_the_agent_gets_cancel() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    // The agent phone rings and never answers; it must receive CANCEL (then 487, ACK).
    let agent = harness.agent("carrier_noanswer.xml", agent_port, &[]);
    // The customer hangs up 1.5 s after answering.
    let carrier = harness.carrier("carrier_answer.xml", &["-d".into(), "1500".into()]);
    answer_and_bridge(&mut harness, 22, Duration::from_secs(20)).await?;
    let events = harness.events_until(Duration::from_secs(20), ended).await?;
    assert!(
        events
            .iter()
            .any(|event| matches!(event, LineEvent::AgentRinging { .. })),
        "{events:?}"
    );
    let Some(LineEvent::Ended {
        outcome,
        hangup_side,
        recording,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(
        (*outcome, *hangup_side),
        (Outcome::Abandoned, Some(HangupSide::Customer))
    );
    assert!(recording.is_none(), "never bridged, nothing recorded");
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await
}

#[tokio::test]
async fn rfc4733_dtmf_from_the_customer_reaches_the_agent() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    let (agent, agent_rtp) = harness.listening_agent("agent_dtmf.xml", agent_port).await?;
    // The carrier sends the digit 1 one second after answering, then hangs up.
    let carrier = harness.carrier("carrier_dtmf.xml", &["-d".into(), "1000".into()]);
    answer_and_bridge(&mut harness, 23, Duration::from_secs(10)).await?;
    let mut buffer = vec![0u8; 2048];
    let mut events_seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let digit = loop {
        let (n_bytes, _) = tokio::time::timeout_at(deadline, agent_rtp.recv_from(&mut buffer))
            .await
            .context("no RFC 4733 packet reached the agent within 10 s")??;
        let packet = &buffer[..n_bytes];
        let Ok(reader) = rtp_rs::RtpReader::new(packet) else {
            continue;
        };
        if reader.payload_type() == 101 && reader.payload().len() >= 4 {
            events_seen.push(reader.payload().to_vec());
            break reader.payload()[0];
        }
    };
    assert_eq!(digit, 1, "the event code is the digit 1: {events_seen:?}");
    let events = harness.events_until(Duration::from_secs(20), ended).await?;
    assert!(
        matches!(
            events.last(),
            Some(LineEvent::Ended {
                hangup_side: Some(HangupSide::Customer),
                ..
            })
        ),
        "{events:?}"
    );
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await
}

/// An agent's own call: the agent is bridged while the customer still rings, hears the
/// carrier's early media (183 with A-law SDP), re-encoded for a µ-law-only phone, before the
/// customer answers; the answer is reported on its own and the call is recorded throughout.
#[tokio::test]
async fn agent_bridged_while_ringing_hears_early_media() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    let (agent, agent_rtp) = harness.listening_agent("agent_answer_pcmu.xml", agent_port).await?;
    // 183 with SDP and A-law audio at once, the 200 OK three seconds later.
    let carrier = harness.carrier("carrier_early_media.xml", &[]);
    harness.dial_own_call(31);

    // What the agent hears, until the announcement gets loud (the recording starts with
    // 0.4 s of near silence) or for at most 1.5 s.
    let mut buffer = vec![0u8; 2048];
    let mut heard: Vec<(u8, Vec<u8>)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let loud = |heard: &[(u8, Vec<u8>)]| {
        heard
            .iter()
            .flat_map(|(_, payload)| payload.iter())
            .map(|byte| i32::from(hardware::g711::ulaw_to_linear(*byte)).abs())
            .max()
            .unwrap_or(0)
    };
    while heard.len() < 75 && loud(&heard) <= 1000 {
        let (n_bytes, _) = tokio::time::timeout_at(deadline, agent_rtp.recv_from(&mut buffer))
            .await
            .with_context(|| format!("the agent heard {} early media packets in 10 s", heard.len()))??;
        let reader = rtp_rs::RtpReader::new(&buffer[..n_bytes])
            .map_err(|error| anyhow::anyhow!("not RTP toward the agent: {error:?}"))?;
        heard.push((reader.payload_type(), reader.payload().to_vec()));
    }
    let mut so_far = Vec::new();
    while let Ok(event) = harness.events.try_recv() {
        so_far.push(event);
    }
    assert!(
        so_far.iter().any(|event| matches!(event, LineEvent::Bridged { call: CallId(31), .. })),
        "the agent is bridged while ringing: {so_far:?}"
    );
    assert!(
        !so_far.iter().any(|event| matches!(event, LineEvent::Answered { .. })),
        "the agent heard the audio before the customer answered: {so_far:?}"
    );
    assert!(
        heard.iter().all(|(payload_type, _)| *payload_type == 0),
        "A-law early media re-encoded as µ-law for the agent's phone: {:?}",
        heard.iter().map(|(payload_type, _)| payload_type).collect::<Vec<_>>()
    );
    let peak = loud(&heard);
    assert!(peak > 1000, "the early media is audible, not silence (peak {peak})");

    harness
        .events_until(Duration::from_secs(10), |event| {
            matches!(event, LineEvent::Answered { call: CallId(31) })
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.telephony.hangup(CallId(31));
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    let Some(LineEvent::Ended {
        outcome,
        hangup_side,
        recording,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(
        (*outcome, *hangup_side),
        (Outcome::Answered, Some(HangupSide::System))
    );
    let recording = recording
        .as_ref()
        .context("recorded from the agent's pick-up")?;
    assert!(
        recording.duration_ms >= 2000,
        "early media and talk are both recorded, got {} ms",
        recording.duration_ms
    );
    let (customer_peak, _) = channel_peaks(&recording.path)?;
    assert!(customer_peak > 1000, "customer channel is silent (peak {customer_peak})");
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await
}

/// An agent's own call to a carrier that rings with a bare 180 (no early media): the agent
/// hears the box's ringback tone, 450 Hz, rather than silence.
#[tokio::test]
async fn agent_bridged_while_ringing_without_early_media_hears_ringback() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    let (agent, agent_rtp) = harness.listening_agent("agent_answer_pcmu.xml", agent_port).await?;
    let carrier = harness.carrier("carrier_noanswer.xml", &[]);
    harness.dial_own_call(33);
    // Half a second of the tone's first second.
    let mut samples = Vec::new();
    let mut buffer = vec![0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while samples.len() < 4_000 {
        let (n_bytes, _) = tokio::time::timeout_at(deadline, agent_rtp.recv_from(&mut buffer))
            .await
            .with_context(|| format!("the agent heard {} samples in 10 s", samples.len()))??;
        let reader = rtp_rs::RtpReader::new(&buffer[..n_bytes])
            .map_err(|error| anyhow::anyhow!("not RTP toward the agent: {error:?}"))?;
        assert_eq!(reader.payload_type(), 0, "in the phone's codec (µ-law)");
        samples.extend(reader.payload().iter().map(|byte| hardware::g711::ulaw_to_linear(*byte)));
    }
    let peak = samples.iter().map(|sample| sample.unsigned_abs()).max().unwrap_or(0);
    assert!(peak > 4_000, "a clear tone, not silence (peak {peak})");
    // A 450 Hz sine crosses zero 900 times a second: 450 in these 4,000 samples.
    let crossings = samples
        .windows(2)
        .filter(|pair| (pair[0] < 0) != (pair[1] < 0))
        .count();
    assert!(
        (400..=500).contains(&crossings),
        "450 Hz expected, {crossings} zero crossings in 0.5 s"
    );
    harness.telephony.hangup(CallId(33));
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    assert_ended_as(&events, Outcome::NoAnswer, Some(HangupSide::System));
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await
}

/// The ring timeout's CANCEL and the carrier's 200 OK cross: the answer is ACKed and hung up
/// with BYE, and the call ends unanswered at once (no 487 will ever come), freeing the
/// number for its next attempt.
#[tokio::test]
async fn an_answer_crossing_the_cancel_is_hung_up_and_ends_the_call() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let carrier = harness.carrier("carrier_answer_at_cancel.xml", &[]);
    harness.dial(34, Duration::from_secs(1));
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    assert!(
        matches!(
            events.last(),
            Some(LineEvent::Ended {
                outcome: Outcome::NoAnswer,
                hangup_side: Some(HangupSide::System),
                recording: None,
                ..
            })
        ),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|event| matches!(event, LineEvent::Answered { .. })),
        "an answer after the give-up is not reported: {events:?}"
    );
    carrier.finish(Duration::from_secs(10)).await?;
    // The number is free again (one attempt per number at a time).
    let busy = harness.carrier("carrier_busy.xml", &[]);
    harness.dial(35, Duration::from_secs(5));
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    assert!(
        matches!(events.last(), Some(LineEvent::Ended { outcome: Outcome::Busy, .. })),
        "{events:?}"
    );
    busy.finish(Duration::from_secs(10)).await
}

/// Given up before the carrier said anything, the call ends at once for the appliance, but
/// the CANCEL waits for the first provisional response (RFC 3261 9.1): the slow carrier
/// fails its scenario if a CANCEL arrives before its 180.
#[tokio::test]
async fn a_cancel_waits_for_the_first_provisional_response() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let carrier = harness.carrier("carrier_slow_ring.xml", &[]);
    harness.dial(36, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(100)).await;
    harness.telephony.hangup(CallId(36));
    let events = harness.events_until(Duration::from_secs(5), ended).await?;
    assert_ended_as(&events, Outcome::NoAnswer, Some(HangupSide::System));
    carrier.finish(Duration::from_secs(10)).await
}

/// The agent gives up their own call while the customer still rings: the customer leg is
/// cancelled and the call ends unanswered, hung up by the agent.
#[tokio::test]
async fn agent_hanging_up_while_ringing_cancels_the_customer() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let agent_port = free_udp_port();
    harness.register_agent(agent_port).await?;
    let agent = harness.agent("agent_hangs_up.xml", agent_port, &[]);
    let carrier = harness.carrier("carrier_noanswer.xml", &[]);
    harness.dial_own_call(32);
    let events = harness.events_until(Duration::from_secs(15), ended).await?;
    assert!(
        events.iter().any(|event| matches!(event, LineEvent::Bridged { call: CallId(32), .. })),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|event| matches!(event, LineEvent::Answered { .. })),
        "{events:?}"
    );
    assert_ended_as(&events, Outcome::NoAnswer, Some(HangupSide::Agent));
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await
}

/// The agent's extension moved to another phone: the old phone signing off (Expires: 0 for
/// its own Contact) leaves the new binding in place; the new phone signing off removes it.
#[tokio::test]
async fn an_old_phone_signing_off_leaves_the_new_binding() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let (old_port, new_port) = (free_udp_port(), free_udp_port());
    harness.register_agent(old_port).await?;
    harness.register_agent(new_port).await?;
    for (contact_port, still_registered) in [(old_port, true), (new_port, false)] {
        Sipp::start(
            "agent_unregister",
            "agent_unregister.xml",
            free_udp_port(),
            free_udp_port(),
            &registration_args(harness.telephony.local_sip_addr(), PASSWORD, contact_port),
            harness.sipp_dir(),
        )
        .finish(Duration::from_secs(15))
        .await?;
        let expected: Vec<String> = if still_registered { vec![EXTENSION.into()] } else { Vec::new() };
        assert_eq!(
            harness.telephony.registered_extensions(),
            expected,
            "after the phone on port {contact_port} signed off"
        );
    }
    Ok(())
}

/// A call whose customer falls silent (no RTP: a BYE lost in the carrier's network) is hung
/// up after the media timeout, while a customer sending audio keeps the call up past it.
#[tokio::test]
async fn a_silent_customer_is_hung_up_after_the_media_timeout() -> anyhow::Result<()> {
    let mut harness = start_telephony_with(TelephonyOptions {
        media_timeout: Duration::from_secs(2),
        ..TelephonyOptions::default()
    })
    .await?;
    // Audio for 3 s, longer than the timeout, then the customer's own BYE.
    let talking = harness.carrier("carrier_answer.xml", &["-d".into(), "3000".into()]);
    harness.dial(41, Duration::from_secs(20));
    let events = harness.events_until(Duration::from_secs(15), ended).await?;
    assert_ended_as(&events, Outcome::Abandoned, Some(HangupSide::Customer));
    talking.finish(Duration::from_secs(10)).await?;
    // Answers and sends nothing, waiting for our BYE.
    let silent = harness.carrier("carrier_answer_wait.xml", &[]);
    harness.dial(42, Duration::from_secs(20));
    harness
        .events_until(Duration::from_secs(10), |event| matches!(event, LineEvent::Answered { .. }))
        .await?;
    let answered_at = std::time::Instant::now();
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    assert_ended_as(&events, Outcome::Abandoned, Some(HangupSide::System));
    let waited = answered_at.elapsed();
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&waited),
        "hung up {waited:?} after the answer; the timeout is 2 s"
    );
    silent.finish(Duration::from_secs(10)).await
}

/// The carrier's network forked the INVITE and two devices answered: the call keeps the
/// first answer, and the second is ACKed and hung up at once (each checked by To-tag in the
/// scenario); only one answer is reported.
#[tokio::test]
async fn a_second_forked_answer_is_acked_and_hung_up() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let carrier = harness.carrier("carrier_forked_answer.xml", &[]);
    harness.dial(43, Duration::from_secs(20));
    harness
        .events_until(Duration::from_secs(10), |event| matches!(event, LineEvent::Answered { .. }))
        .await?;
    // Time for the second answer to be ACKed and sent its BYE.
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.telephony.hangup(CallId(43));
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    assert!(
        !events.iter().any(|event| matches!(event, LineEvent::Answered { .. })),
        "the second answer is not reported: {events:?}"
    );
    assert_ended_as(&events, Outcome::Abandoned, Some(HangupSide::System));
    carrier.finish(Duration::from_secs(10)).await
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_source_out() -> anyhow::Result<()> {
    let mut harness = start_telephony_with(TelephonyOptions {
        lockout: LockoutPolicy {
            max_failures: 2,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        },
        ..TelephonyOptions::default()
    })
    .await?;
    let sip = harness.telephony.local_sip_addr();
    for (name, scenario, password) in [
        ("guess1", "agent_register_refused.xml", "guess-1"),
        ("guess2", "agent_register_refused.xml", "guess-2"),
        // Locked out now: even the right password is refused, without a challenge.
        ("right_but_locked", "agent_register_locked.xml", PASSWORD),
    ] {
        let refused = Sipp::start(
            name,
            scenario,
            free_udp_port(),
            free_udp_port(),
            &registration_args(sip, password, free_udp_port()),
            harness.sipp_dir(),
        );
        refused.finish(Duration::from_secs(15)).await?;
    }
    assert!(harness.telephony.registered_extensions().is_empty());
    assert!(
        harness.events.try_recv().is_err(),
        "no registration while locked out"
    );
    Ok(())
}

#[tokio::test]
async fn an_invite_from_the_trunk_side_never_reaches_a_trunk() -> anyhow::Result<()> {
    // Toll fraud: the carrier (or someone spoofing it) sends an INVITE for an international
    // number. It must be refused, and no INVITE may leave toward any trunk.
    let mut harness = start_telephony().await?;
    let sip = harness.telephony.local_sip_addr();
    let trunk = tokio::net::UdpSocket::bind(("127.0.0.1", harness.carrier_port)).await?;
    let trunk_addr = trunk.local_addr()?;
    for (n, uri) in [
        format!("sip:0085212345678@{sip}"),
        format!("sip:0085212345678@{}", trunk_addr.ip()),
        format!("sip:{EXTENSION}@{sip}"),
    ]
    .into_iter()
    .enumerate()
    {
        let invite = sip_core::Request::new(sip_core::Method::Invite, uri)
            .with_header(
                "Via",
                format!("SIP/2.0/UDP {trunk_addr};branch=z9hG4bKtoll{n}"),
            )
            .with_header("From", format!("<sip:13800138000@{trunk_addr}>;tag=t{n}"))
            .with_header("To", "<sip:0085212345678@outpost>")
            .with_header("Call-ID", format!("toll-{n}"))
            .with_header("CSeq", "1 INVITE")
            .with_header("Max-Forwards", "70");
        trunk.send_to(&invite.to_bytes(), sip).await?;
        let mut buffer = [0u8; 4096];
        let (n_bytes, _) =
            tokio::time::timeout(Duration::from_secs(3), trunk.recv_from(&mut buffer))
                .await
                .context("no answer to the trunk-side INVITE")??;
        let Ok(sip_core::Message::Response(response)) = sip_core::parse(&buffer[..n_bytes]) else {
            bail!(
                "expected a response, got {:?}",
                String::from_utf8_lossy(&buffer[..n_bytes])
            );
        };
        assert_eq!(response.status, 403);
    }
    // Nothing else arrives at the trunk: no INVITE went out.
    let mut buffer = [0u8; 4096];
    let extra =
        tokio::time::timeout(Duration::from_millis(700), trunk.recv_from(&mut buffer)).await;
    assert!(
        extra.is_err(),
        "something was sent toward the trunk: {:?}",
        extra.map(|r| r.map(|(n, _)| String::from_utf8_lossy(&buffer[..n]).into_owned()))
    );
    assert!(harness.events.try_recv().is_err(), "no call was created");
    Ok(())
}
