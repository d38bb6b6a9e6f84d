//! Inbound calls (呼入) against real SIP peers: SIPp plays the carrier delivering a customer's
//! call to one of the site's numbers (a DID of the trunk) and the agent's phone the call is
//! put through to; what is not a trunk's call to one of its numbers is refused with 403.

mod calls;
mod common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hardware::{HangupSide, LineEvent, Outcome, TelephonyOptions, TrunkOptions};

use calls::{EXTENSION, Harness, ended, start_telephony_with};

const DID: &str = "02155550000";
const CALLER: &str = "13900001111";

async fn with_did() -> anyhow::Result<Harness> {
    let options = TelephonyOptions {
        trunks: HashMap::from([(
            "carrier".to_string(),
            TrunkOptions { dids: vec![DID.into()], ..TrunkOptions::default() },
        )]),
        ..TelephonyOptions::default()
    };
    start_telephony_with(options).await
}

#[tokio::test]
async fn a_call_to_a_did_is_answered_and_put_through_to_an_agent() -> anyhow::Result<()> {
    let mut harness = with_did().await?;
    let agent_port = common::free_udp_port();
    harness.register_agent(agent_port).await?;
    let (agent, agent_rtp) = harness.listening_agent("agent_answer_pcmu.xml", agent_port).await?;
    let sip = harness.telephony.local_sip_addr();
    let carrier = harness.carrier(
        "carrier_inbound.xml",
        &[
            "-s".into(),
            DID.into(),
            "-key".into(),
            "caller".into(),
            CALLER.into(),
            "-d".into(),
            "4000".into(),
            sip.to_string(),
        ],
    );
    let events = harness
        .events_until(Duration::from_secs(10), |event| matches!(event, LineEvent::Answered { .. }))
        .await?;
    let Some(LineEvent::Incoming { call, trunk, did, caller }) = events.first().cloned() else {
        bail!("no Incoming before the answer: {events:?}")
    };
    assert_eq!((trunk.as_str(), did.as_str(), caller.as_str()), ("carrier", DID, CALLER));
    assert!(call.0 >= 1 << 63, "inbound ids never meet the appliance's own: {call:?}");
    assert!(matches!(events.last(), Some(LineEvent::Answered { call: answered }) if *answered == call));

    harness.telephony.bridge(call, EXTENSION, Duration::from_secs(10), true);
    harness
        .events_until(Duration::from_secs(10), |event| matches!(event, LineEvent::Bridged { .. }))
        .await?;
    // The caller's A-law audio reaches the agent, re-encoded to the agent's µ-law.
    let mut buffer = vec![0u8; 2048];
    let mut heard = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while heard < 25 {
        let (n_bytes, _) = tokio::time::timeout_at(deadline, agent_rtp.recv_from(&mut buffer))
            .await
            .with_context(|| format!("the agent heard {heard} packets of the caller in 10 s"))??;
        if rtp_rs::RtpReader::new(&buffer[..n_bytes]).is_ok_and(|rtp| rtp.payload_type() == 0) {
            heard += 1;
        }
    }
    // The caller hangs up.
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    let Some(LineEvent::Ended { call: ended_call, outcome, hangup_side, recording, .. }) = events.last() else {
        unreachable!("stop condition")
    };
    assert_eq!((*ended_call, *outcome, *hangup_side), (call, Outcome::Answered, Some(HangupSide::Customer)));
    assert!(recording.as_ref().is_some_and(|recording| recording.bytes > 44), "{recording:?}");
    carrier.finish(Duration::from_secs(10)).await?;
    agent.finish(Duration::from_secs(10)).await
}

/// One INVITE for `uri` from `socket`; the status of the answer.
async fn invite_status(socket: &tokio::net::UdpSocket, uri: &str, n: usize, sip: std::net::SocketAddr) -> anyhow::Result<u16> {
    let local = socket.local_addr()?;
    let invite = sip_core::Request::new(sip_core::Method::Invite, uri.to_string())
        .with_header("Via", format!("SIP/2.0/UDP {local};branch=z9hG4bKin{n}"))
        .with_header("From", format!("<sip:{CALLER}@{local}>;tag=i{n}"))
        .with_header("To", format!("<sip:{DID}@outpost>"))
        .with_header("Call-ID", format!("inbound-{n}"))
        .with_header("CSeq", "1 INVITE")
        .with_header("Max-Forwards", "70");
    socket.send_to(&invite.to_bytes(), sip).await?;
    let mut buffer = [0u8; 4096];
    let (n_bytes, _) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buffer))
        .await
        .context("no answer to the INVITE")??;
    let Ok(sip_core::Message::Response(response)) = sip_core::parse(&buffer[..n_bytes]) else {
        bail!("not a SIP response: {:?}", String::from_utf8_lossy(&buffer[..n_bytes]))
    };
    Ok(response.status)
}

#[tokio::test]
async fn only_the_trunk_is_answered_and_only_for_its_numbers() -> anyhow::Result<()> {
    let mut harness = with_did().await?;
    let sip = harness.telephony.local_sip_addr();
    // A stranger calling the site's number: not the trunk, refused.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    assert_eq!(invite_status(&stranger, &format!("sip:{DID}@{sip}"), 1, sip).await?, 403);
    // The trunk asking for any other number (an international one, an extension): refused,
    // and nothing goes out toward the trunk.
    let trunk = tokio::net::UdpSocket::bind(("127.0.0.1", harness.carrier_port)).await?;
    for (n, number) in ["0085212345678", EXTENSION, "021555500001"].into_iter().enumerate() {
        assert_eq!(invite_status(&trunk, &format!("sip:{number}@{sip}"), n + 2, sip).await?, 403, "{number}");
    }
    // The trunk's own number without SDP cannot be answered (no media to offer to).
    assert_eq!(invite_status(&trunk, &format!("sip:{DID}@{sip}"), 9, sip).await?, 488);
    let mut buffer = [0u8; 4096];
    let extra = tokio::time::timeout(Duration::from_millis(700), trunk.recv_from(&mut buffer)).await;
    assert!(extra.is_err(), "something more was sent toward the trunk");
    assert!(harness.events.try_recv().is_err(), "no call was created");
    Ok(())
}
