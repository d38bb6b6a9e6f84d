//! A box of an older release, for the rolling-upgrade tests: it connects with an enrolled
//! identity offering one chosen ALPN (`sync_protocol::v2::SYNC_ALPN`), and sends and reads
//! whatever message types the test gives it (the frozen `sync_protocol::v2::Frame`), over
//! the real QUIC link and framing. Only tests build it (`test-utils`).

use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::SiteIdentity;
use crate::wire::FrameStream;

/// One sync connection of an older box.
pub struct OldPeer {
    _endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    stream: FrameStream,
}

impl OldPeer {
    /// Connects to `hub` as `identity` offering only `alpn`, and opens the sync stream.
    pub async fn connect(identity: &SiteIdentity, hub: SocketAddr, alpn: &[u8]) -> Result<OldPeer, String> {
        let config = identity.client_config_offering(vec![alpn.to_vec()])?;
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(|e| e.to_string())?;
        endpoint.set_default_client_config(config);
        let connection = endpoint
            .connect(hub, crate::HUB_SERVER_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
        Ok(OldPeer { _endpoint: endpoint, connection, stream: FrameStream::new(send, recv) })
    }

    /// The ALPN the handshake settled on.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.connection
            .handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|data| data.protocol)
    }

    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), String> {
        self.stream.send(message).await.map_err(|e| e.to_string())
    }

    /// The next message, `None` when the hub finished the stream.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, String> {
        self.stream.recv().await.map_err(|e| e.to_string())
    }

    pub fn close(&self) {
        self.connection.close(0u32.into(), b"done");
    }
}
