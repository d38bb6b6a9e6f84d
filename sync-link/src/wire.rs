//! Frames over one QUIC bidirectional stream: the async edge of `sync_protocol::framing`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_protocol::framing::{EncodeError, FrameDecoder, FrameError, encode_message};

/// Why a stream stopped carrying frames.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("cannot encode a frame: {0}")]
    Encode(#[from] EncodeError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("cannot send: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("cannot receive: {0}")]
    Read(#[from] quinn::ReadError),
}

pub(crate) struct FrameStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    buffer: Vec<u8>,
}

impl FrameStream {
    pub(crate) fn new(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        FrameStream { send, recv, decoder: FrameDecoder::new(), buffer: vec![0u8; 64 * 1024] }
    }

    pub(crate) async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WireError> {
        let bytes = encode_message(message)?;
        self.send.write_all(&bytes).await?;
        Ok(())
    }

    /// The next message, `None` when the peer finished the stream cleanly. Cancel-safe:
    /// bytes already read stay in the decoder.
    pub(crate) async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        loop {
            if let Some(message) = self.decoder.next_message::<T>()? {
                return Ok(Some(message));
            }
            match self.recv.read(&mut self.buffer).await? {
                Some(n) => self.decoder.push(&self.buffer[..n]),
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }

    /// Write raw bytes (a blob's content after its offer).
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.send.write_all(bytes).await?;
        Ok(())
    }

    /// The next raw bytes after the frames (first whatever the decoder had read ahead),
    /// `None` when the peer finished the stream.
    pub(crate) async fn recv_raw(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let ahead = self.decoder.take_buffered();
        if !ahead.is_empty() {
            return Ok(Some(ahead));
        }
        match self.recv.read(&mut self.buffer).await? {
            Some(n) => Ok(Some(self.buffer[..n].to_vec())),
            None => Ok(None),
        }
    }

    /// No more frames from this side.
    pub(crate) fn finish(&mut self) {
        // Finishing a stream the peer already reset is harmless; nothing to report.
        let _ = self.send.finish();
    }
}
