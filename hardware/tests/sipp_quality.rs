//! Call quality as the box measures it on a real call: SIPp plays the carrier, whose SDP
//! names a socket of the test as the customer's media address; the test is the customer's
//! media path, numbering 400 packets of A-law audio every 20 ms and losing one in twenty
//! (5 %) on the way to the box, as a lossy network would. The call's end reports the
//! customer leg's loss within one point of that, its jitter and an E-model MOS below a
//! clean G.711 call's.

mod calls;
mod common;

use std::time::Duration;

use anyhow::Context as _;
use hardware::{CallId, LineEvent};

use calls::{ended, start_telephony};

const PACKETS: u16 = 400;

/// RTP version 2, A-law (payload type 8), 160 samples of silence.
fn alaw_packet(seq: u16, timestamp: u32, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 8];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend(std::iter::repeat_n(0xD5u8, 160));
    packet
}

#[tokio::test]
async fn a_customer_leg_losing_five_per_cent_is_reported_with_that_loss() -> anyhow::Result<()> {
    let mut harness = start_telephony().await?;
    let customer_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let carrier = harness.carrier(
        "carrier_answer_listen.xml",
        &["-key".into(), "rtp_port".into(), customer_rtp.local_addr()?.port().to_string()],
    );
    harness.dial(41, Duration::from_secs(20));
    harness
        .events_until(Duration::from_secs(15), |event| matches!(event, LineEvent::Answered { .. }))
        .await?;
    // Hold audio toward the customer tells the test where the box takes the customer's RTP.
    harness.telephony.hold(CallId(41));
    let mut buffer = vec![0u8; 2048];
    let (_, box_rtp) = tokio::time::timeout(Duration::from_secs(5), customer_rtp.recv_from(&mut buffer))
        .await
        .context("the box sends hold audio to the customer")??;

    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (first_seq, ssrc) = (65_300u16, 0x5eed_0001u32);
    let mut sent = 0u32;
    for i in 0..PACKETS {
        tick.tick().await;
        if i % 20 == 7 {
            continue;
        }
        let packet = alaw_packet(first_seq.wrapping_add(i), 8000 + u32::from(i) * 160, ssrc);
        customer_rtp.send_to(&packet, box_rtp).await?;
        sent += 1;
    }
    let injected = 100.0 * f64::from(u32::from(PACKETS) - sent) / f64::from(PACKETS);
    tokio::time::sleep(Duration::from_millis(100)).await;
    harness.telephony.hangup(CallId(41));
    let events = harness.events_until(Duration::from_secs(10), ended).await?;
    let Some(LineEvent::Ended { quality, .. }) = events.last() else { unreachable!("stop condition") };
    let customer = quality.customer.context("the customer leg's figures")?;
    assert!((customer.loss_percent - injected).abs() <= 1.0, "injected {injected} %, measured {customer:?}");
    assert_eq!(customer.received, u64::from(sent), "{customer:?}");
    // Sent on a 20 ms clock over loopback: a few milliseconds at most, even on a busy machine.
    assert!(customer.jitter_ms < 10.0, "{customer:?}");
    let clean = hardware::quality::g711_mos(0.0, 0.0, 0.0);
    assert!(customer.mos < clean - 0.3 && customer.mos > 3.5, "5 % loss costs about half a point: {customer:?}");
    assert!(quality.agent.is_none(), "no agent was bridged: {quality:?}");
    carrier.finish(Duration::from_secs(10)).await
}
