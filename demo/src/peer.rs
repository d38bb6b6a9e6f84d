//! What the simulated carrier and the simulated phones share: sending a datagram, and
//! answering an INVITE with a G.711 SDP answer and a tone on a fresh RTP socket.

use std::net::SocketAddr;

use sip_core::sdp::{self, Codec, SessionDescription};
use sip_core::{Request, Response};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::carrier::send_audio;

/// Sends one datagram; a failure is logged, not fatal: SIP retransmits.
pub(crate) fn send(socket: &UdpSocket, bytes: &[u8], destination: SocketAddr, who: &str) {
    if let Err(error) = socket.try_send_to(bytes, destination) {
        warn!(%destination, %error, "{who} send failed");
    }
}

/// Answers `invite` with 200 OK (Contact `sip:user@local`) and starts sending a tone to the
/// offer's address. Returns the 200's bytes (kept for retransmission) and the token that
/// stops the audio.
pub(crate) async fn answer_with_tone(
    socket: &UdpSocket,
    local: SocketAddr,
    invite: &Request,
    to_tag: &str,
    source: SocketAddr,
    contact_user: &str,
    tone_hz: f64,
) -> anyhow::Result<(Vec<u8>, CancellationToken)> {
    let offer = SessionDescription::parse(&invite.body)?;
    let path = offer.audio_path(&[Codec::Pcmu, Codec::Pcma])?;
    let rtp = UdpSocket::bind((local.ip(), 0)).await?;
    let rtp_port = rtp.local_addr()?.port();
    let mut ok = Response::to_request(invite, 200, "OK", Some(to_tag))
        .with_header("Contact", format!("<sip:{contact_user}@{local}>"))
        .with_header("Content-Type", "application/sdp");
    ok.body = sdp::build_audio(
        local.ip(),
        rtp_port,
        &[path.codec],
        path.telephone_event,
        u64::from(rand::random::<u32>()),
    );
    let bytes = ok.to_bytes();
    send(socket, &bytes, source, contact_user);
    let stop = CancellationToken::new();
    tokio::spawn(send_audio(
        rtp,
        path.remote,
        path.codec,
        tone_hz,
        stop.clone(),
    ));
    Ok((bytes, stop))
}
