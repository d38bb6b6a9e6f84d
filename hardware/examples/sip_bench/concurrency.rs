//! The `concurrency` benchmark and its load generator (`load`, run as a child process): the
//! simulated carrier and phones of `sip-peers`, with RTP both ways counted.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hardware::{
    CallId, DialRequest, ExtensionConfig, LineEvent, Telephony, TelephonyConfig, TrunkConfig,
};
use sip_peers::{CallBehaviour, Hooks, MediaCall, PeerConfig, PeerSocket, RegisterConfig};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UdpSocket;
use tokio::process::Command;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{arg, cpu_seconds, free_port, list, rss_mib};

/// The simulated phones' SIP password (every extension has the same).
const PHONE_PASSWORD: &str = "bench";

pub(crate) async fn concurrency(args: &[String]) -> anyhow::Result<()> {
    let counts = list(&arg(args, "--calls", "100,200,500"))?;
    let seconds: u64 = arg(args, "--seconds", "20").parse()?;
    for n_calls in counts {
        concurrency_at(n_calls, seconds).await?;
    }
    Ok(())
}

async fn concurrency_at(n_calls: u32, seconds: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let carrier_port = free_port()?;
    let extensions: Vec<ExtensionConfig> = (0..n_calls)
        .map(|idx| ExtensionConfig {
            extension: format!("{}", 2000 + idx),
            password: PHONE_PASSWORD.into(),
        })
        .collect();
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        trunks: vec![TrunkConfig::on_loopback("carrier", carrier_port, 100_000)],
        extensions,
        ..TelephonyConfig::on_loopback(dir.path())
    })
    .await?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "load",
            &telephony.local_sip_addr().to_string(),
            &carrier_port.to_string(),
            &n_calls.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut child_in = child.stdin.take().context("child stdin")?;
    let mut child_out = BufReader::new(child.stdout.take().context("child stdout")?).lines();

    let deadline = Instant::now() + Duration::from_secs(60);
    while telephony.registered_extensions().len() < n_calls as usize {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n_calls} phones registered",
                telephony.registered_extensions().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Dial at 50 calls/s; bridge each answered call to its own agent.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for idx in 0..n_calls {
        tick.tick().await;
        telephony.dial(DialRequest {
            call: CallId(u64::from(idx)),
            trunk: "carrier".into(),
            number: format!("1390000{idx:05}"),
            caller_id: "02155550000".into(),
            ring_timeout: Duration::from_secs(30),
        });
    }
    let mut bridged = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while bridged < n_calls {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(LineEvent::Answered { call })) => telephony.bridge(
                call,
                &format!("{}", 2000 + call.0),
                Duration::from_secs(20),
                true,
            ),
            Ok(Some(LineEvent::Bridged { .. })) => bridged += 1,
            Ok(Some(LineEvent::Ended { call, outcome, .. })) => {
                bail!("call {call:?} ended early: {outcome:?}")
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => bail!("only {bridged} of {n_calls} calls bridged within 60 s"),
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    child_in.write_all(b"start\n").await?;
    let (cpu_start, wall_start) = (cpu_seconds(), Instant::now());
    let mut peak_rss = rss_mib();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(rss_mib());
    }
    let cpu = (cpu_seconds() - cpu_start) / wall_start.elapsed().as_secs_f64();
    child_in.write_all(b"stop\n").await?;
    let counts = child_out
        .next_line()
        .await?
        .context("load generator printed no counts")?;
    for idx in 0..n_calls {
        telephony.hangup(CallId(u64::from(idx)));
    }
    let mut ended = 0;
    let mut recorded_bytes = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ended < n_calls {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(LineEvent::Ended { recording, .. })) => {
                ended += 1;
                recorded_bytes += recording.map(|r| r.bytes).unwrap_or(0);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = child.start_kill();
    println!(
        "{n_calls} bridged recorded calls for {seconds} s: box CPU {:.0} % of one core, peak RSS {peak_rss:.1} MiB, {counts}, recordings {:.1} MiB",
        cpu * 100.0,
        recorded_bytes as f64 / 1_048_576.0
    );
    Ok(())
}

// ---- load generator (child process) ---------------------------------------------------------

#[derive(Default)]
struct Counters {
    /// Packets sent while this is set are counted, marked, and counted again on arrival.
    counting_sends: AtomicBool,
    customer_sent: AtomicU64,
    customer_received: AtomicU64,
    agent_sent: AtomicU64,
    agent_received: AtomicU64,
}

/// One call's RTP toward the box, sent by the one sender every 20 ms until the call ends.
struct Stream {
    socket: Arc<UdpSocket>,
    remote: SocketAddr,
    is_agent: bool,
    sequence: u16,
    timestamp: u32,
    stop: CancellationToken,
}

type Streams = Arc<Mutex<Vec<Stream>>>;

/// The audio of the load generator's peers: each answered call becomes a stream of the one
/// sender, and its socket counts the marked packets the box relays to it.
struct Counted {
    is_agent: bool,
    streams: Streams,
    counters: Arc<Counters>,
}

impl Hooks for Counted {
    fn media(&self, call: MediaCall) {
        let socket = Arc::new(call.socket);
        let (is_agent, streams, counters) =
            (self.is_agent, self.streams.clone(), self.counters.clone());
        tokio::spawn(async move {
            streams.lock().await.push(Stream {
                socket: socket.clone(),
                remote: call.remote,
                is_agent,
                sequence: 1,
                timestamp: 0,
                stop: call.stop.clone(),
            });
            let received = if is_agent {
                &counters.agent_received
            } else {
                &counters.customer_received
            };
            let mut buffer = vec![0u8; 2048];
            loop {
                tokio::select! {
                    _ = call.stop.cancelled() => return,
                    packet = socket.recv_from(&mut buffer) => {
                        let Ok((n_bytes, _)) = packet else { return };
                        if n_bytes > 12 && buffer[12] == 0xAA {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
    }
}

/// Sends a 20 ms PCMU packet on every stream every 20 ms.
async fn send_streams(streams: Streams, counters: Arc<Counters>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let measuring = counters.counting_sends.load(Ordering::Relaxed);
        // Counted packets carry 0xAA as their first payload byte, so the receiver counts
        // exactly those (the relay forwards payloads untouched).
        let payload = [if measuring { 0xAAu8 } else { 0x55 }; 160];
        let mut streams = streams.lock().await;
        streams.retain(|stream| !stream.stop.is_cancelled());
        for stream in streams.iter_mut() {
            let mut packet = Vec::with_capacity(172);
            packet.extend_from_slice(&[0x80, 0x00]);
            packet.extend_from_slice(&stream.sequence.to_be_bytes());
            packet.extend_from_slice(&stream.timestamp.to_be_bytes());
            packet.extend_from_slice(&(u32::from(stream.is_agent) + 7).to_be_bytes());
            packet.extend_from_slice(&payload);
            stream.sequence = stream.sequence.wrapping_add(1);
            stream.timestamp = stream.timestamp.wrapping_add(160);
            if stream.socket.try_send_to(&packet, stream.remote).is_ok() && measuring {
                let sent = if stream.is_agent {
                    &counters.agent_sent
                } else {
                    &counters.customer_sent
                };
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The child process: a carrier on the given port answering every call at once, and N
/// phones (extensions 2000..) registering with the box and answering at once. Counts RTP
/// between `start` and `stop` on stdin, then prints the counts.
pub(crate) async fn load(args: &[String]) -> anyhow::Result<()> {
    let box_sip: SocketAddr = args.get(1).context("box address")?.parse()?;
    let carrier_port: u16 = args.get(2).context("carrier port")?.parse()?;
    let n_calls: u32 = args.get(3).context("calls")?.parse()?;
    let counters = Arc::new(Counters::default());
    let streams: Streams = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(send_streams(streams.clone(), counters.clone()));
    let hooks = |is_agent| -> Arc<dyn Hooks> {
        Arc::new(Counted {
            is_agent,
            streams: streams.clone(),
            counters: counters.clone(),
        })
    };
    // The parent kills this process when it is done; nothing else stops the peers.
    let forever = CancellationToken::new();

    let carrier = PeerSocket::bind(SocketAddr::from(([127, 0, 0, 1], carrier_port))).await?;
    let carrier_peer = PeerConfig {
        user: "carrier".into(),
        calls: CallBehaviour::at_once(),
        register: None,
    };
    tokio::spawn(carrier.run(carrier_peer, hooks(false), forever.clone()));
    for idx in 0..n_calls {
        let phone = PeerSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let phone_peer = PeerConfig {
            user: format!("{}", 2000 + idx),
            calls: CallBehaviour::at_once(),
            // Like a real phone, it registers again every second until it is registered
            // (UDP may drop a burst of 500 REGISTERs).
            register: Some(RegisterConfig {
                registrar: box_sip,
                password: PHONE_PASSWORD.into(),
                expires: Duration::from_secs(3600),
                retry: Duration::from_secs(1),
            }),
        };
        tokio::spawn(phone.run(phone_peer, hooks(true), forever.clone()));
    }

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        match line.trim() {
            "start" => counters.counting_sends.store(true, Ordering::Relaxed),
            "stop" => {
                // Stop marking packets and give the marked ones in flight 300 ms to arrive.
                counters.counting_sends.store(false, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(300)).await;
                let c_sent = counters.customer_sent.load(Ordering::Relaxed);
                let a_sent = counters.agent_sent.load(Ordering::Relaxed);
                let a_recv = counters.agent_received.load(Ordering::Relaxed);
                let c_recv = counters.customer_received.load(Ordering::Relaxed);
                let loss = |sent: u64, received: u64| {
                    if sent == 0 {
                        0.0
                    } else {
                        100.0 * (sent.saturating_sub(received)) as f64 / sent as f64
                    }
                };
                println!(
                    "RTP customer->agent {c_sent} sent / {a_recv} relayed (loss {:.3} %), agent->customer {a_sent} sent / {c_recv} relayed (loss {:.3} %)",
                    loss(c_sent, a_recv),
                    loss(a_sent, c_recv)
                );
                return Ok(());
            }
            _ => {}
        }
    }
    Ok(())
}
