//! Telephony against real SIP peers, the agent's side of a call: bridging to a registered
//! phone and recording, a busy or ringing agent, hold and resume, DTMF, early media and
//! ringback toward an agent offered a call that still rings. SIPp plays the carrier and the
//! phones on loopback; the harness is in `calls/`, the customer's leg in `sipp_calls.rs`.
//!
//! Each test asserts the [`LineEvent`]s, the recording, and that every SIPp scenario
//! completed (exit status 0). SIPp processes are killed on drop; every wait has a timeout.

mod calls;
mod common;

use std::time::Duration;

use anyhow::Context as _;
use hardware::{CallId, HangupSide, LineEvent, Outcome};

use calls::{EXTENSION, answer_and_bridge, assert_ended_as, channel_peaks, ended, start_telephony};
use common::free_udp_port;

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
