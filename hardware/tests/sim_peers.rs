//! The simulated carrier and phone of `sip-peers` (the demo's and the benchmarks' peers)
//! against the real lines: the phone registers with digest, the carrier rings, answers and
//! hangs up, the call is bridged to the phone; a busy carrier ends a dial as busy, and one
//! that never answers rings until the box's ring timeout cancels it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hardware::{
    CallId, DialRequest, ExtensionConfig, HangupSide, LineEvent, Outcome, Telephony,
    TelephonyConfig, TrunkConfig,
};
use sip_peers::{CallBehaviour, OnEvent, PeerConfig, PeerEvent, PeerSocket, RegisterConfig};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use common::free_udp_port;

const EXTENSION: &str = "2001";
const PASSWORD: &str = "sim-s3cret";

/// The next event that is not about registrations, within 10 s.
async fn next_call_event(events: &mut UnboundedReceiver<LineEvent>) -> anyhow::Result<LineEvent> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the lines stopped"))?;
        if !matches!(
            event,
            LineEvent::ExtensionRegistered { .. } | LineEvent::ExtensionUnregistered { .. }
        ) {
            return Ok(event);
        }
    }
}

fn dial(telephony: &Telephony, call: u64, trunk: &str, ring_timeout: Duration) {
    telephony.dial(DialRequest {
        call: CallId(call),
        trunk: trunk.into(),
        number: "13800138000".into(),
        caller_id: "02155550000".into(),
        ring_timeout,
    });
}

/// A carrier peer with `calls` on 127.0.0.1:`port`, noting its events.
async fn carrier(
    port: u16,
    calls: CallBehaviour,
    seen: Arc<Mutex<Vec<PeerEvent>>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let socket = PeerSocket::bind(([127, 0, 0, 1], port).into()).await?;
    let config = PeerConfig {
        user: "carrier".into(),
        calls,
        register: None,
    };
    let hooks = OnEvent(move |_: Instant, event: &PeerEvent| {
        seen.lock().expect("events").push(event.clone());
    });
    tokio::spawn(socket.run(config, Arc::new(hooks), shutdown.clone()));
    Ok(())
}

#[tokio::test]
async fn a_call_rings_is_answered_bridged_to_the_phone_and_hung_up_by_the_carrier()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let carrier_port = free_udp_port();
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        trunks: vec![TrunkConfig::on_loopback("carrier", carrier_port, 2)],
        extensions: vec![ExtensionConfig {
            extension: EXTENSION.into(),
            password: PASSWORD.into(),
        }],
        ..TelephonyConfig::on_loopback(dir.path())
    })
    .await?;
    let shutdown = CancellationToken::new();
    let carrier_seen = Arc::new(Mutex::new(Vec::new()));
    let calls = CallBehaviour {
        trying: true,
        ringing: true,
        ring: (Duration::from_millis(200), Duration::from_millis(200)),
        talk: Some((Duration::from_millis(1500), Duration::from_millis(1500))),
        ..CallBehaviour::at_once()
    };
    carrier(carrier_port, calls, carrier_seen.clone(), &shutdown).await?;

    let phone = PeerSocket::bind(([127, 0, 0, 1], 0).into()).await?;
    let phone_config = PeerConfig {
        user: EXTENSION.into(),
        calls: CallBehaviour {
            ringing: true,
            ring: (Duration::from_millis(100), Duration::from_millis(100)),
            ..CallBehaviour::at_once()
        },
        register: Some(RegisterConfig {
            registrar: telephony.local_sip_addr(),
            password: PASSWORD.into(),
            expires: Duration::from_secs(300),
            retry: Duration::from_secs(1),
        }),
    };
    let phone_task =
        tokio::spawn(phone.run(phone_config, Arc::new(sip_peers::Silent), shutdown.clone()));
    let registered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(LineEvent::ExtensionRegistered { extension, .. }) = events.recv().await {
                break extension;
            }
        }
    })
    .await?;
    assert_eq!(registered, EXTENSION);

    dial(&telephony, 1, "carrier", Duration::from_secs(10));
    assert!(matches!(
        next_call_event(&mut events).await?,
        LineEvent::Ringing { call: CallId(1) }
    ));
    assert!(matches!(
        next_call_event(&mut events).await?,
        LineEvent::Answered { call: CallId(1) }
    ));
    telephony.bridge(CallId(1), EXTENSION, Duration::from_secs(5), false);
    assert!(matches!(
        next_call_event(&mut events).await?,
        LineEvent::AgentRinging { .. }
    ));
    assert!(matches!(
        next_call_event(&mut events).await?,
        LineEvent::Bridged { .. }
    ));
    match next_call_event(&mut events).await? {
        LineEvent::Ended {
            call,
            outcome,
            hangup_side,
            ..
        } => {
            assert_eq!(call, CallId(1));
            assert_eq!(outcome, Outcome::Answered);
            assert_eq!(
                hangup_side,
                Some(HangupSide::Customer),
                "the carrier's BYE ended it"
            );
        }
        other => panic!("expected the call to end, got {other:?}"),
    }
    let seen = carrier_seen.lock().expect("events").clone();
    assert!(
        matches!(
            seen.as_slice(),
            [
                PeerEvent::Offered { .. },
                PeerEvent::AnswerDue { .. },
                PeerEvent::Answered { .. },
                PeerEvent::Ended { .. }
            ]
        ),
        "{seen:?}"
    );

    // The phone stops cleanly when told to.
    shutdown.cancel();
    phone_task.await??;
    Ok(())
}

#[tokio::test]
async fn a_busy_carrier_ends_the_dial_busy_and_a_silent_one_rings_until_cancelled()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (busy_port, ringing_port) = (free_udp_port(), free_udp_port());
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        trunks: vec![
            TrunkConfig::on_loopback("busy", busy_port, 1),
            TrunkConfig::on_loopback("ringing", ringing_port, 1),
        ],
        ..TelephonyConfig::on_loopback(dir.path())
    })
    .await?;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let refusing = CallBehaviour {
        trying: true,
        ringing: true,
        answer_share: 0.0,
        busy_share: 1.0,
        ..CallBehaviour::at_once()
    };
    carrier(busy_port, refusing.clone(), Arc::default(), &shutdown).await?;
    let never_answers = CallBehaviour {
        busy_share: 0.0,
        ..refusing
    };
    carrier(ringing_port, never_answers, Arc::default(), &shutdown).await?;

    dial(&telephony, 1, "busy", Duration::from_secs(10));
    match next_call_event(&mut events).await? {
        LineEvent::Ended { outcome, .. } => assert_eq!(outcome, Outcome::Busy),
        other => panic!("expected busy, got {other:?}"),
    }
    let dialled = Instant::now();
    dial(&telephony, 2, "ringing", Duration::from_secs(1));
    assert!(matches!(
        next_call_event(&mut events).await?,
        LineEvent::Ringing { call: CallId(2) }
    ));
    match next_call_event(&mut events).await? {
        LineEvent::Ended { outcome, .. } => assert_eq!(outcome, Outcome::NoAnswer),
        other => panic!("expected no answer, got {other:?}"),
    }
    assert!(
        dialled.elapsed() >= Duration::from_secs(1),
        "ended by the ring timeout"
    );
    Ok(())
}
