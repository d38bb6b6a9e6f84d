//! A UDP relay put between an appliance and the hub to drop, delay or cut the link's
//! datagrams at will, the link itself untouched and unaware: the fault-injection path of the
//! partition and crash tests. Compiled only with the `test-utils` feature.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;

/// A UDP relay between the appliance and the hub with switches for loss, delay and a full
/// partition. It serves one client (the appliance keeps its UDP socket across reconnects).
pub struct UdpRelay {
    /// Where the client sends (in place of the server's address).
    pub addr: SocketAddr,
    /// Share of datagrams dropped, both ways, in per cent.
    pub loss_percent: Arc<AtomicU64>,
    /// Delay added to every datagram.
    pub delay_ms: Arc<AtomicU64>,
    /// While set, every datagram is dropped: a cut cable.
    pub partitioned: Arc<AtomicBool>,
    /// Datagrams dropped so far.
    pub dropped: Arc<AtomicU64>,
    /// The relay itself; abort it to take the path away for good.
    pub task: tokio::task::JoinHandle<()>,
}

impl UdpRelay {
    /// Starts relaying between a client that sends to [`UdpRelay::addr`] and `server`.
    pub async fn start(server: SocketAddr) -> std::io::Result<UdpRelay> {
        let front = Arc::new(UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await?);
        let back = Arc::new(UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await?);
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let loss_percent = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let partitioned = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (loss, delay, cut, drops) = (loss_percent.clone(), delay_ms.clone(), partitioned.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut up = vec![0u8; 65536];
            let mut down = vec![0u8; 65536];
            loop {
                let (datagram, toward_hub) = tokio::select! {
                    received = front.recv_from(&mut up) => match received {
                        Ok((n, from)) => {
                            client = Some(from);
                            (up[..n].to_vec(), true)
                        }
                        Err(_) => continue,
                    },
                    received = back.recv(&mut down) => match received {
                        Ok(n) => (down[..n].to_vec(), false),
                        // The hub's port is closed while it restarts: ICMP errors are normal.
                        Err(_) => continue,
                    },
                };
                // xorshift: a fixed, repeatable loss pattern.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if cut.load(Ordering::SeqCst) || rng % 100 < loss.load(Ordering::SeqCst) {
                    drops.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let wait = Duration::from_millis(delay.load(Ordering::SeqCst));
                let (front, back) = (front.clone(), back.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = if toward_hub {
                        back.send(&datagram).await
                    } else if let Some(client) = client {
                        front.send_to(&datagram, client).await
                    } else {
                        Ok(0)
                    };
                });
            }
        });
        Ok(UdpRelay { addr, loss_percent, delay_ms, partitioned, dropped, task })
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
