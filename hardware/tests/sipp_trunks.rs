//! Trunk behaviour against real SIP peers (SIPp as carrier, proxy and registrar).
//!
//! Covers T1: 503 failover, dead-trunk detection by OPTIONS and failover, digest toward the
//! carrier on 401 and 407, SHA-256 digest, REGISTER with refresh, outbound proxy, early media
//! (183), SIP over TCP, per-trunk channel limit, and the outcomes of 486/603/404.
//! Every wait is bounded; SIPp is killed on drop.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use hardware::{
    CallId, DialRequest, LineEvent, Outcome, SipTransport, Telephony, TelephonyConfig,
    TelephonyOptions, TrunkConfig, TrunkOptions, TrunkRegistration,
};
use sip_core::auth::{Algorithm, Authorization, NonceIssuer, challenge_header};
use sip_core::{Message, Response};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

use common::{Sipp, free_udp_port};

const TRUNK_USER: &str = "outpost-trunk";
const TRUNK_PASSWORD: &str = "trunk-s3cret";

fn trunk(name: &str, port: u16, domain: &str, channels: u32) -> TrunkConfig {
    TrunkConfig {
        domain: domain.into(),
        username: Some(TRUNK_USER.into()),
        password: Some(TRUNK_PASSWORD.into()),
        ..TrunkConfig::on_loopback(name, port, channels)
    }
}

struct Lines {
    telephony: Telephony,
    events: UnboundedReceiver<LineEvent>,
    dir: tempfile::TempDir,
}

async fn start(
    trunks: Vec<TrunkConfig>,
    options: HashMap<String, TrunkOptions>,
) -> anyhow::Result<Lines> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("hardware=debug")
        .try_init();
    let dir = tempfile::tempdir()?;
    let config = TelephonyConfig {
        trunks,
        ..TelephonyConfig::on_loopback(dir.path())
    };
    let (telephony, events) = Telephony::start_with(
        config,
        TelephonyOptions {
            trunks: options,
            ..TelephonyOptions::default()
        },
    )
    .await?;
    Ok(Lines {
        telephony,
        events,
        dir,
    })
}

impl Lines {
    fn dial(&self, call: u64, trunk: &str, ring_timeout: Duration) {
        self.telephony.dial(DialRequest {
            call: CallId(call),
            trunk: trunk.into(),
            number: "13800138000".into(),
            caller_id: "02155550000".into(),
            ring_timeout,
        });
    }

    async fn next_event(&mut self, timeout: Duration) -> anyhow::Result<LineEvent> {
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => bail!("event channel closed"),
            Err(_) => bail!("no line event within {timeout:?}"),
        }
    }

    /// Events until the first `Ended`, which is returned as (outcome, all events).
    async fn until_ended(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<(Outcome, Vec<LineEvent>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = match self.next_event(left).await {
                Ok(event) => event,
                Err(error) => bail!("{error}; seen {seen:?}"),
            };
            if let LineEvent::Ended { outcome, .. } = &event {
                let outcome = *outcome;
                seen.push(event);
                return Ok((outcome, seen));
            }
            seen.push(event);
        }
    }

    async fn until_answered(&mut self, timeout: Duration) -> anyhow::Result<Vec<LineEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = match self.next_event(left).await {
                Ok(event) => event,
                Err(error) => bail!("{error}; seen {seen:?}"),
            };
            let done = matches!(event, LineEvent::Answered { .. });
            if matches!(event, LineEvent::Ended { .. }) {
                bail!("ended before answer: {event:?}; seen {seen:?}");
            }
            seen.push(event);
            if done {
                return Ok(seen);
            }
        }
    }

    fn sipp(&self, name: &str, scenario: &str, port: u16, extra: &[String]) -> Sipp {
        Sipp::start(
            name,
            scenario,
            port,
            free_udp_port(),
            extra,
            self.dir.path(),
        )
    }
}

#[tokio::test]
async fn a_503_fails_over_to_the_next_trunk() -> anyhow::Result<()> {
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let mut options = HashMap::new();
    options.insert(
        "primary".to_string(),
        TrunkOptions {
            failover: vec!["backup".into()],
            ..TrunkOptions::default()
        },
    );
    let mut lines = start(
        vec![
            trunk("primary", port_a, "127.0.0.1", 4),
            trunk("backup", port_b, "127.0.0.1", 4),
        ],
        options,
    )
    .await?;
    let overloaded = lines.sipp("primary", "carrier_503.xml", port_a, &[]);
    let busy = lines.sipp("backup", "carrier_busy.xml", port_b, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(1, "primary", Duration::from_secs(10));
    let (outcome, _) = lines.until_ended(Duration::from_secs(10)).await?;
    assert_eq!(
        outcome,
        Outcome::Busy,
        "the backup trunk's 486 decides the outcome"
    );
    overloaded.finish(Duration::from_secs(5)).await?;
    busy.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn a_dead_trunk_is_marked_by_options_and_skipped() -> anyhow::Result<()> {
    // Nothing listens on the primary's port: its OPTIONS go unanswered.
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let mut options = HashMap::new();
    options.insert(
        "primary".to_string(),
        TrunkOptions {
            health_check: Some(Duration::from_millis(300)),
            failover: vec!["backup".into()],
            ..TrunkOptions::default()
        },
    );
    let mut lines = start(
        vec![
            trunk("primary", port_a, "127.0.0.1", 4),
            trunk("backup", port_b, "127.0.0.1", 4),
        ],
        options,
    )
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = lines.telephony.trunk_status();
        if status
            .iter()
            .any(|trunk| trunk.name == "primary" && !trunk.alive)
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("primary never marked dead: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backup = lines.sipp("backup", "carrier_decline.xml", port_b, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(1, "primary", Duration::from_secs(10));
    let (outcome, _) = lines.until_ended(Duration::from_secs(10)).await?;
    assert_eq!(outcome, Outcome::Rejected, "603 from the backup: declined");
    backup.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn an_answering_trunk_stays_alive_under_health_checks() -> anyhow::Result<()> {
    // A minimal carrier that answers OPTIONS 200, built from sip-core.
    let carrier = UdpSocket::bind("127.0.0.1:0").await?;
    let port = carrier.local_addr()?.port();
    let mut options = HashMap::new();
    options.insert(
        "carrier".to_string(),
        TrunkOptions {
            health_check: Some(Duration::from_millis(200)),
            ..TrunkOptions::default()
        },
    );
    let lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], options).await?;
    let mut buffer = vec![0u8; 4096];
    let mut n_answered = 0;
    while n_answered < 4 {
        let (n_bytes, source) =
            tokio::time::timeout(Duration::from_secs(3), carrier.recv_from(&mut buffer)).await??;
        let Ok(Message::Request(request)) = sip_core::parse(&buffer[..n_bytes]) else {
            bail!("not a request");
        };
        assert_eq!(request.method.as_str(), "OPTIONS");
        let ok = Response::to_request(&request, 200, "OK", Some("c1"));
        carrier.send_to(&ok.to_bytes(), source).await?;
        n_answered += 1;
    }
    let status = lines.telephony.trunk_status();
    assert_eq!(status.len(), 1);
    assert!(status[0].alive, "{status:?}");
    assert_eq!(status[0].registered, None);
    Ok(())
}

async fn digest_call(challenge_status: &str) -> anyhow::Result<()> {
    let port = free_udp_port();
    let mut lines = start(vec![trunk("carrier", port, "127.0.0.1", 4)], HashMap::new()).await?;
    let carrier = lines.sipp(
        "carrier_auth",
        &format!("carrier_auth_{challenge_status}.xml"),
        port,
        &[],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(7, "carrier", Duration::from_secs(10));
    lines.until_answered(Duration::from_secs(10)).await?;
    lines.telephony.hangup(CallId(7));
    let (outcome, _) = lines.until_ended(Duration::from_secs(5)).await?;
    assert_eq!(outcome, Outcome::Abandoned, "answered but never bridged");
    carrier.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn carrier_digest_on_401_is_answered() -> anyhow::Result<()> {
    digest_call("401").await
}

#[tokio::test]
async fn carrier_digest_on_407_is_answered() -> anyhow::Result<()> {
    digest_call("407").await
}

/// A carrier that challenges our BYE gets it again with credentials (checked by SIPp's
/// verifyauth); without that the customer leg would stay up after we hung up.
#[tokio::test]
async fn a_challenged_bye_is_sent_again_with_credentials() -> anyhow::Result<()> {
    let port = free_udp_port();
    let mut lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], HashMap::new()).await?;
    let carrier = lines.sipp("carrier_bye", "carrier_bye_challenge.xml", port, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(8, "carrier", Duration::from_secs(10));
    lines.until_answered(Duration::from_secs(10)).await?;
    lines.telephony.hangup(CallId(8));
    lines.until_ended(Duration::from_secs(5)).await?;
    carrier.finish(Duration::from_secs(10)).await?;
    Ok(())
}

#[tokio::test]
async fn carrier_sha256_digest_is_preferred_and_verifies() -> anyhow::Result<()> {
    // SIPp cannot verify SHA-256, so this carrier is sip-core's server side: it offers
    // SHA-256 and MD5 and accepts only a SHA-256 answer.
    let carrier = UdpSocket::bind("127.0.0.1:0").await?;
    let port = carrier.local_addr()?.port();
    let lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], HashMap::new()).await?;
    lines.dial(3, "carrier", Duration::from_secs(10));
    let nonces = NonceIssuer::from_rng(&mut rand::rng());
    let mut buffer = vec![0u8; 8192];
    let mut recv = async || -> anyhow::Result<(sip_core::Request, SocketAddr)> {
        loop {
            let (n_bytes, source) =
                tokio::time::timeout(Duration::from_secs(5), carrier.recv_from(&mut buffer))
                    .await??;
            if let Ok(Message::Request(request)) = sip_core::parse(&buffer[..n_bytes]) {
                return Ok((request, source));
            }
        }
    };
    let (invite, source) = recv().await?;
    assert_eq!(invite.method.as_str(), "INVITE");
    let nonce = nonces.issue(1);
    let challenge = Response::to_request(&invite, 407, "Proxy Authentication Required", Some("c"))
        .with_header(
            "Proxy-Authenticate",
            challenge_header("carrier.example", &nonce, Algorithm::Md5, false),
        )
        .with_header(
            "Proxy-Authenticate",
            challenge_header("carrier.example", &nonce, Algorithm::Sha256, false),
        );
    carrier.send_to(&challenge.to_bytes(), source).await?;
    let (ack, _) = recv().await?;
    assert_eq!(ack.method.as_str(), "ACK");
    let (retry, source) = recv().await?;
    assert_eq!(retry.method.as_str(), "INVITE");
    let answer = Authorization::parse(
        retry
            .headers
            .get("Proxy-Authorization")
            .ok_or_else(|| anyhow::anyhow!("no Proxy-Authorization"))?,
    )?;
    assert_eq!(answer.algorithm, Algorithm::Sha256);
    assert_eq!(answer.username, TRUNK_USER);
    assert!(
        answer.verify("INVITE", TRUNK_PASSWORD),
        "SHA-256 digest verifies"
    );
    assert!(
        !answer.verify("INVITE", "wrong"),
        "and is not trivially true"
    );
    let busy = Response::to_request(&retry, 486, "Busy Here", Some("c2"));
    carrier.send_to(&busy.to_bytes(), source).await?;
    drop(lines);
    Ok(())
}

/// The trunk registers (asking for `expires`) against SIPp running `scenario` as the
/// carrier's registrar, which checks what it must; the trunk ends up registered.
async fn registers_against(scenario: &str, expires: Duration) -> anyhow::Result<()> {
    let port = free_udp_port();
    let mut options = HashMap::new();
    options.insert(
        "carrier".to_string(),
        TrunkOptions {
            register: Some(TrunkRegistration {
                user: TRUNK_USER.into(),
                expires,
            }),
            ..TrunkOptions::default()
        },
    );
    let logs = tempfile::tempdir()?;
    let registrar = Sipp::start(scenario, scenario, port, free_udp_port(), &[], logs.path());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], options).await?;
    registrar.finish(Duration::from_secs(10)).await?;
    let status = lines.telephony.trunk_status();
    assert_eq!(status[0].registered, Some(true), "{status:?}");
    Ok(())
}

#[tokio::test]
async fn trunk_registers_with_digest_and_refreshes() -> anyhow::Result<()> {
    registers_against("trunk_register.xml", Duration::from_secs(120)).await
}

/// A registrar listing other devices' bindings and an absurd expiry for ours: the box reads
/// its own binding, grants itself no more than it asked for, refreshes in time and keeps
/// running (a 2^64 s expiry once overflowed the refresh time).
#[tokio::test]
async fn trunk_registration_takes_its_own_binding_and_caps_the_expiry() -> anyhow::Result<()> {
    registers_against("trunk_register_lavish.xml", Duration::from_secs(4)).await
}

#[tokio::test]
async fn requests_go_through_the_outbound_proxy_with_a_route() -> anyhow::Result<()> {
    let proxy_port = free_udp_port();
    let mut options = HashMap::new();
    options.insert(
        "carrier".to_string(),
        TrunkOptions {
            outbound_proxy: Some(SocketAddr::from(([127, 0, 0, 1], proxy_port))),
            ..TrunkOptions::default()
        },
    );
    // The trunk's own address is unused: everything must go to the proxy.
    let mut lines = start(
        vec![trunk("carrier", free_udp_port(), "carrier.example", 1)],
        options,
    )
    .await?;
    let proxy = lines.sipp("proxy", "carrier_proxy_busy.xml", proxy_port, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(1, "carrier", Duration::from_secs(10));
    let (outcome, _) = lines.until_ended(Duration::from_secs(10)).await?;
    assert_eq!(outcome, Outcome::Busy);
    proxy.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn early_media_183_then_answer() -> anyhow::Result<()> {
    let port = free_udp_port();
    let mut lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], HashMap::new()).await?;
    let carrier = lines.sipp("early", "carrier_early_media.xml", port, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(1, "carrier", Duration::from_secs(10));
    let seen = lines.until_answered(Duration::from_secs(10)).await?;
    assert!(
        matches!(seen[0], LineEvent::Ringing { .. }),
        "183 reports ringing first: {seen:?}"
    );
    lines.telephony.hangup(CallId(1));
    lines.until_ended(Duration::from_secs(5)).await?;
    carrier.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn sip_over_tcp_toward_the_carrier() -> anyhow::Result<()> {
    let port = free_udp_port();
    let mut options = HashMap::new();
    options.insert(
        "carrier".to_string(),
        TrunkOptions {
            transport: SipTransport::Tcp,
            ..TrunkOptions::default()
        },
    );
    let mut lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], options).await?;
    let carrier = lines.sipp(
        "tcp",
        "carrier_answer_wait.xml",
        port,
        &["-t".into(), "t1".into()],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    lines.dial(1, "carrier", Duration::from_secs(10));
    lines.until_answered(Duration::from_secs(10)).await?;
    lines.telephony.hangup(CallId(1));
    lines.until_ended(Duration::from_secs(5)).await?;
    carrier.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn refusals_map_to_outcomes_and_channels_are_limited() -> anyhow::Result<()> {
    let port = free_udp_port();
    let mut lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], HashMap::new()).await?;
    for (scenario, expected) in [
        ("carrier_decline.xml", Outcome::Rejected),
        ("carrier_404.xml", Outcome::Failed { status: 404 }),
    ] {
        let carrier = lines.sipp(scenario, scenario, port, &[]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        lines.dial(1, "carrier", Duration::from_secs(10));
        let (outcome, _) = lines.until_ended(Duration::from_secs(10)).await?;
        assert_eq!(outcome, expected, "{scenario}");
        carrier.finish(Duration::from_secs(5)).await?;
    }
    // One channel: a second call while the first rings is refused with 503 at once.
    let carrier = lines.sipp("ring", "carrier_noanswer.xml", port, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(10, "carrier", Duration::from_secs(2));
    lines.telephony.dial(DialRequest {
        call: CallId(11),
        trunk: "carrier".into(),
        number: "13900139000".into(),
        caller_id: "02155550000".into(),
        ring_timeout: Duration::from_secs(2),
    });
    let mut outcomes = HashMap::new();
    while outcomes.len() < 2 {
        if let LineEvent::Ended { call, outcome, .. } =
            lines.next_event(Duration::from_secs(10)).await?
        {
            outcomes.insert(call, outcome);
        }
    }
    assert_eq!(outcomes[&CallId(11)], Outcome::Failed { status: 503 });
    assert_eq!(outcomes[&CallId(10)], Outcome::NoAnswer);
    carrier.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn one_attempt_per_number_at_a_time() -> anyhow::Result<()> {
    let port = free_udp_port();
    let mut lines = start(vec![trunk("carrier", port, "127.0.0.1", 4)], HashMap::new()).await?;
    let carrier = lines.sipp("ring", "carrier_noanswer.xml", port, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(1, "carrier", Duration::from_secs(2));
    // The same number, written differently, while the first attempt rings.
    lines.telephony.dial(DialRequest {
        call: CallId(2),
        trunk: "carrier".into(),
        number: "138-0013-8000".into(),
        caller_id: "02155550001".into(),
        ring_timeout: Duration::from_secs(2),
    });
    let mut outcomes = HashMap::new();
    while outcomes.len() < 2 {
        if let LineEvent::Ended { call, outcome, .. } =
            lines.next_event(Duration::from_secs(10)).await?
        {
            outcomes.insert(call, outcome);
        }
    }
    assert_eq!(
        outcomes[&CallId(2)],
        Outcome::Failed { status: 0 },
        "refused locally"
    );
    assert_eq!(outcomes[&CallId(1)], Outcome::NoAnswer);
    carrier.finish(Duration::from_secs(5)).await?;
    Ok(())
}

/// A µ-law WAV of `n` samples of `byte`: recognisable on the wire, unchanged by the codec.
fn ulaw_wav(byte: u8, n: usize) -> Vec<u8> {
    hardware::ulaw_wav(&vec![byte; n])
}

#[tokio::test]
async fn a_waiting_customer_hears_the_hold_file_in_20_ms_packets() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir()?;
    let hold_file = dir.path().join("hold.wav");
    std::fs::write(&hold_file, ulaw_wav(0x2a, 8000))?;
    let port = free_udp_port();
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        trunks: vec![trunk("carrier", port, "127.0.0.1", 1)],
        hold_audio: Some(hold_file),
        ..TelephonyConfig::on_loopback(dir.path())
    })
    .await?;
    let customer_rtp = UdpSocket::bind("127.0.0.1:0").await?;
    let carrier = Sipp::start(
        "carrier",
        "carrier_answer_listen.xml",
        port,
        free_udp_port(),
        &[
            "-key".into(),
            "rtp_port".into(),
            customer_rtp.local_addr()?.port().to_string(),
        ],
        dir.path(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    telephony.dial(DialRequest {
        call: CallId(5),
        trunk: "carrier".into(),
        number: "13800138000".into(),
        caller_id: "02155550000".into(),
        ring_timeout: Duration::from_secs(10),
    });
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await? {
            Some(LineEvent::Answered { .. }) => break,
            Some(LineEvent::Ended { outcome, .. }) => bail!("ended: {outcome:?}"),
            Some(_) => {}
            None => bail!("events closed"),
        }
    }
    telephony.hold(CallId(5));
    let mut buffer = vec![0u8; 2048];
    let mut packets = Vec::new();
    while packets.len() < 10 {
        let (n_bytes, _) =
            tokio::time::timeout(Duration::from_secs(3), customer_rtp.recv_from(&mut buffer))
                .await??;
        packets.push(buffer[..n_bytes].to_vec());
    }
    let started = std::time::Instant::now();
    for _ in 0..25 {
        tokio::time::timeout(Duration::from_secs(3), customer_rtp.recv_from(&mut buffer)).await??;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed <= Duration::from_millis(800),
        "25 packets should take about 500 ms at 20 ms each, took {elapsed:?}"
    );
    let readers: Vec<rtp_rs::RtpReader<'_>> = packets
        .iter()
        .map(|bytes| rtp_rs::RtpReader::new(bytes).expect("rtp"))
        .collect();
    for reader in &readers {
        assert_eq!(reader.payload_type(), 0, "PCMU, as negotiated");
        assert_eq!(reader.payload().len(), 160, "20 ms of 8 kHz");
        assert!(
            reader.payload().iter().all(|byte| *byte == 0x2a),
            "the file's samples, unchanged"
        );
    }
    for pair in readers.windows(2) {
        assert_eq!(pair[1].timestamp().wrapping_sub(pair[0].timestamp()), 160);
        assert_eq!(pair[1].ssrc(), pair[0].ssrc());
    }

    // The task's own hold music replaces the box's file on the same stream.
    let ssrc = readers[0].ssrc();
    telephony.hold_with(CallId(5), hardware::HoldAudio::from_wav(&ulaw_wav(0x55, 800))?);
    let switched = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let (n_bytes, _) = customer_rtp.recv_from(&mut buffer).await?;
            let reader = rtp_rs::RtpReader::new(&buffer[..n_bytes]).map_err(|error| anyhow::anyhow!("{error:?}"))?;
            if reader.payload().iter().all(|byte| *byte == 0x55) {
                return anyhow::Ok(reader.ssrc());
            }
        }
    })
    .await??;
    assert_eq!(switched, ssrc, "one stream toward the customer whatever plays");
    telephony.hangup(CallId(5));
    carrier.finish(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn the_customer_puts_the_box_on_hold_resumes_and_hangs_up() -> anyhow::Result<()> {
    // The same SIPp phone script as the agent side, here as the customer's carrier: it
    // answers, re-INVITEs with a=sendonly (expects a=recvonly), then a=sendrecv, then BYE.
    let port = free_udp_port();
    let mut lines = start(vec![trunk("carrier", port, "127.0.0.1", 1)], HashMap::new()).await?;
    let carrier = lines.sipp("customer", "agent_hold_resume.xml", port, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines.dial(1, "carrier", Duration::from_secs(10));
    lines.until_answered(Duration::from_secs(10)).await?;
    lines.telephony.hold(CallId(1));
    let (outcome, seen) = lines.until_ended(Duration::from_secs(15)).await?;
    assert_eq!(
        outcome,
        Outcome::Abandoned,
        "answered, never bridged: {seen:?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(LineEvent::Ended {
                hangup_side: Some(hardware::HangupSide::Customer),
                ..
            })
        ),
        "{seen:?}"
    );
    carrier.finish(Duration::from_secs(5)).await?;
    Ok(())
}
