//! Telephony against real SIP peers: SIPp plays the carrier and the agent phones on loopback.
//! This file: the customer's leg (busy, ring timeout, CANCEL races, forks, media timeout), the
//! registrar (refusals, lockout, rebinding) and what the box refuses or survives; the agent's
//! side of a call is in `sipp_agents.rs`, the shared harness in `calls/`.
//!
//! Each test starts a [`hardware::Telephony`] on a free port, one or more SIPp processes with
//! the scenarios in `tests/sipp/`, drives a call through the public API and asserts the
//! [`LineEvent`]s, the recording, and that every SIPp scenario completed (exit status 0).
//! SIPp processes are killed on drop; every wait has a timeout.

mod calls;
mod common;

use std::time::Duration;

use anyhow::{Context as _, bail};
use hardware::{
    CallId, ExtensionConfig, HangupSide, LineEvent, LockoutPolicy, Outcome, TelephonyOptions,
};

use calls::{
    EXTENSION, PASSWORD, assert_ended_as, ended, registration_args, start_telephony,
    start_telephony_with,
};
use common::{Sipp, free_udp_port};

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
        ..
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
