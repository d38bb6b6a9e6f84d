//! SIP over TCP: one task per connection, framing messages by Content-Length.
//!
//! The driver owns the connection table; each connection task writes what the driver queues
//! and hands every complete message it reads back to the driver's inbox together with the
//! peer address, so TCP and UDP packets meet the same `on_packet`. Connections the box opens
//! (toward TCP trunks) and connections peers open (phones, carriers sending in-dialog
//! requests) are handled alike. A connection that breaks is dropped; the next send reopens it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Biggest message a peer may send over TCP before the connection is judged hostile.
const MAX_FRAME: usize = sip_core::message::MAX_MESSAGE_BYTES;

/// What a connection task tells the driver.
pub(crate) enum TcpEvent {
    /// A complete SIP message arrived from `peer`.
    Message { peer: SocketAddr, bytes: Vec<u8> },
    /// The connection to `peer` is gone.
    Closed { peer: SocketAddr },
}

/// Takes complete messages off the front of `buffer`; `Err` when the stream cannot be SIP.
pub(crate) fn take_frames(buffer: &mut Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
    let mut frames = Vec::new();
    loop {
        // CRLF keep-alives (RFC 5626) between messages are skipped.
        let leading = buffer
            .iter()
            .take_while(|byte| **byte == b'\r' || **byte == b'\n')
            .count();
        buffer.drain(..leading);
        let Some(head_end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
            if buffer.len() > MAX_FRAME {
                return Err(format!("{} bytes without an end of headers", buffer.len()));
            }
            return Ok(frames);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]);
        let mut content_length = 0usize;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                content_length = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("Content-Length {:?} is not a number", value.trim()))?;
            }
        }
        // Checked before adding: a Content-Length near usize::MAX must not wrap the total.
        if content_length > MAX_FRAME {
            return Err(format!("Content-Length {content_length} is over the {MAX_FRAME}-byte limit"));
        }
        let total = head_end + 4 + content_length;
        if total > MAX_FRAME {
            return Err(format!("a {total}-byte message is over the limit"));
        }
        if buffer.len() < total {
            return Ok(frames);
        }
        frames.push(buffer.drain(..total).collect());
    }
}

/// Runs one connection until it breaks or the driver drops the sender.
pub(crate) async fn run_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<TcpEvent>,
) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            bytes = outgoing.recv() => match bytes {
                Some(bytes) => {
                    if let Err(error) = stream.write_all(&bytes).await {
                        warn!(%peer, %error, "SIP over TCP: write failed; closing");
                        break;
                    }
                }
                None => break,
            },
            read = stream.read(&mut chunk) => match read {
                Ok(0) => break,
                Ok(n_read) => {
                    buffer.extend_from_slice(&chunk[..n_read]);
                    match take_frames(&mut buffer) {
                        Ok(frames) => {
                            for bytes in frames {
                                let _ = events.send(TcpEvent::Message { peer, bytes });
                            }
                        }
                        Err(reason) => {
                            warn!(%peer, %reason, "SIP over TCP: not a SIP stream; closing");
                            break;
                        }
                    }
                }
                Err(error) => {
                    debug!(%peer, %error, "SIP over TCP: read failed");
                    break;
                }
            },
        }
    }
    // The queue goes first, so the driver can tell this connection's end from a newer one's.
    drop(outgoing);
    let _ = events.send(TcpEvent::Closed { peer });
}

/// Opens a connection toward `peer` and runs it; failures are reported as `Closed`.
pub(crate) async fn connect(
    peer: SocketAddr,
    outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<TcpEvent>,
) {
    match tokio::time::timeout(std::time::Duration::from_secs(5), TcpStream::connect(peer)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            run_connection(stream, peer, outgoing, events).await;
        }
        Ok(Err(error)) => {
            warn!(%peer, %error, "SIP over TCP: cannot connect");
            drop(outgoing);
            let _ = events.send(TcpEvent::Closed { peer });
        }
        Err(_) => {
            warn!(%peer, "SIP over TCP: connect timed out after 5 s");
            drop(outgoing);
            let _ = events.send(TcpEvent::Closed { peer });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_on_content_length_and_skip_keepalives() {
        let mut buffer = b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabcBYE sip:b SIP/2.0\r\nContent-Length: 0\r\n\r\nINV".to_vec();
        let frames = take_frames(&mut buffer).expect("frames");
        assert_eq!(frames.len(), 2);
        assert!(frames[0].ends_with(b"abc"));
        assert!(frames[1].starts_with(b"BYE"));
        assert_eq!(buffer, b"INV");
        let mut bad = b"X sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n".to_vec();
        assert!(take_frames(&mut bad).is_err());
    }

    #[test]
    fn a_content_length_that_would_wrap_the_total_is_refused() {
        // head_end + 4 + length == 2^64 would wrap to 0: an empty frame forever.
        let head = "X\r\nContent-Length: ";
        let head_end = head.len() + 20;
        let wrapping = usize::MAX - (head_end + 4) + 1;
        let mut hostile = format!("{head}{wrapping:020}\r\n\r\n").into_bytes();
        let refused = take_frames(&mut hostile).expect_err("refused, not an endless empty frame");
        assert!(refused.contains("over the"), "{refused}");
    }
}
