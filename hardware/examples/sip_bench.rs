//! Capacity benchmark of the telephony lines (not a test; figures go to docs/benchmarks.md).
//!
//! `rate`: the box dials a SIPp UAS (`tests/sipp/bench_uas.xml`: 200 at once, BYE after the
//! talk time) at increasing call rates; the highest rate with no failed call is reported.
//! The same SIPp load (SIPp UAC -> proxy -> SIPp UAS, same rates, same talk time) is carried
//! by Kamailio as a stateful proxy (`--kamailio-cfg`, listening on 127.0.0.1:5060, relaying
//! to 127.0.0.1:5080), and our rate is reported as a ratio of Kamailio's.
//!
//! `concurrency`: N calls bridged to N registered agents, RTP both ways (PCMU, 20 ms) and
//! recording on. A load generator runs as a child process (this binary, `load` mode: a fake
//! carrier and N fake phones built on sip-core), so the box's CPU and memory are its own.
//! Reports the box's CPU share, resident memory and the RTP loss per direction.
//!
//! ```sh
//! cargo run --release -p hardware --example sip_bench -- rate --rates 25,50,100,200 --seconds 10
//! cargo run --release -p hardware --example sip_bench -- concurrency --calls 100,200,500 --seconds 20
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hardware::{
    CallId, DialRequest, ExtensionConfig, HangupSide, LineEvent, Outcome, Telephony,
    TelephonyConfig, TrunkConfig,
};
use sip_core::auth::{Challenge, Credentials};
use sip_core::sdp::SessionDescription;
use sip_core::{Message, Method, Request, Response};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UdpSocket;
use tokio::process::Command;
use tokio::sync::Mutex;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|idx| args.get(idx + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn list(text: &str) -> anyhow::Result<Vec<u32>> {
    text.split(',')
        .map(|item| {
            item.trim()
                .parse()
                .with_context(|| format!("{item:?} is not a number"))
        })
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/sipp")
        .join(name)
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

/// Resident memory in MiB, from /proc/self/status.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("rate") => rate(&args).await,
        Some("concurrency") => concurrency(&args).await,
        Some("load") => load(&args).await,
        _ => bail!(
            "usage: sip_bench rate [--rates 25,50] [--seconds 10] [--talk-ms 1000] [--kamailio-cfg PATH] | concurrency [--calls 100,200,500] [--seconds 20]"
        ),
    }
}

// ---- call rate ------------------------------------------------------------------------------

async fn rate(args: &[String]) -> anyhow::Result<()> {
    let rates = list(&arg(args, "--rates", "25,50,100,200"))?;
    let seconds: u32 = arg(args, "--seconds", "10").parse()?;
    let talk_ms: u32 = arg(args, "--talk-ms", "1000").parse()?;
    let kamailio_cfg = arg(
        args,
        "--kamailio-cfg",
        "/work/shared/anchors/kamailio-stateful-proxy.cfg",
    );
    let mut best_ours = 0;
    let mut best_kamailio = 0;
    for &cps in &rates {
        let (ok, failed) = ours_at(cps, seconds, talk_ms).await?;
        println!("outpost  {cps:>4} calls/s x {seconds} s: {ok} completed, {failed} failed");
        if failed == 0 && ok == cps * seconds {
            best_ours = cps;
        }
        let kamailio_ok = kamailio_at(cps, seconds, talk_ms, &kamailio_cfg).await?;
        println!(
            "kamailio {cps:>4} calls/s x {seconds} s: {}",
            if kamailio_ok {
                "all completed"
            } else {
                "failures"
            }
        );
        if kamailio_ok {
            best_kamailio = cps;
        }
    }
    println!(
        "highest rate without a failed call: outpost {best_ours} calls/s, kamailio {best_kamailio} calls/s"
    );
    if best_kamailio > 0 {
        println!(
            "ratio outpost / kamailio = {:.2}",
            f64::from(best_ours) / f64::from(best_kamailio)
        );
    }
    Ok(())
}

async fn ours_at(cps: u32, seconds: u32, talk_ms: u32) -> anyhow::Result<(u32, u32)> {
    let dir = tempfile::tempdir()?;
    let carrier_port = free_port()?;
    let mut uas = Command::new("/usr/bin/sipp")
        .arg("-sf")
        .arg(scenario("bench_uas.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &carrier_port.to_string(),
            "-d",
            &talk_ms.to_string(),
        ])
        .args(["-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        sip_bind: "127.0.0.1:0".parse()?,
        public_ip: "127.0.0.1".parse()?,
        rtp_ports: (0, 0),
        trunks: vec![TrunkConfig {
            name: "carrier".into(),
            address: SocketAddr::from(([127, 0, 0, 1], carrier_port)),
            domain: "127.0.0.1".into(),
            username: None,
            password: None,
            channels: 100_000,
        }],
        extensions: Vec::new(),
        recordings_dir: dir.path().join("recordings"),
        hold_audio: None,
    })
    .await?;
    let total = cps * seconds;
    let dialer = {
        let telephony = telephony.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(cps)));
            for idx in 0..total {
                tick.tick().await;
                telephony.dial(DialRequest {
                    call: CallId(u64::from(idx)),
                    trunk: "carrier".into(),
                    number: format!("1380000{idx:05}"),
                    caller_id: "02155550000".into(),
                    ring_timeout: Duration::from_secs(30),
                });
            }
        })
    };
    let (mut ok, mut failed) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(seconds) + 40);
    while ok + failed < total {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(LineEvent::Ended {
                outcome,
                hangup_side,
                ..
            })) => {
                if outcome == Outcome::Abandoned && hangup_side == Some(HangupSide::Customer) {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    dialer.abort();
    let lost = total - ok - failed;
    let _ = uas.start_kill();
    let _ = uas.wait().await;
    Ok((ok, failed + lost))
}

async fn kamailio_at(cps: u32, seconds: u32, talk_ms: u32, cfg: &str) -> anyhow::Result<bool> {
    let mut proxy = Command::new("/usr/sbin/kamailio")
        .args(["-f", cfg, "-DD", "-E", "-n", "2", "-m", "256", "-M", "32"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start /usr/sbin/kamailio (apt-get install kamailio)")?;
    let mut uas = Command::new("/usr/bin/sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", "5080", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let total = cps * seconds;
    let status = Command::new("/usr/bin/sipp")
        .args([
            "-sn",
            "uac",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port()?.to_string(),
        ])
        .args([
            "-r",
            &cps.to_string(),
            "-m",
            &total.to_string(),
            "-d",
            &talk_ms.to_string(),
        ])
        .args([
            "-nostdin",
            "-timeout",
            &format!("{}s", seconds + 40),
            "-timeout_error",
            "127.0.0.1:5060",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    let _ = uas.start_kill();
    let _ = proxy.start_kill();
    let _ = uas.wait().await;
    let _ = proxy.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(status.success())
}

// ---- concurrency ----------------------------------------------------------------------------

async fn concurrency(args: &[String]) -> anyhow::Result<()> {
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
            password: "bench".into(),
        })
        .collect();
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        sip_bind: "127.0.0.1:0".parse()?,
        public_ip: "127.0.0.1".parse()?,
        rtp_ports: (0, 0),
        trunks: vec![TrunkConfig {
            name: "carrier".into(),
            address: SocketAddr::from(([127, 0, 0, 1], carrier_port)),
            domain: "127.0.0.1".into(),
            username: None,
            password: None,
            channels: 100_000,
        }],
        extensions,
        recordings_dir: dir.path().join("recordings"),
        hold_audio: None,
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

/// Streams that send a 20 ms PCMU packet every tick to the box.
type Streams = Arc<Mutex<Vec<(Arc<UdpSocket>, SocketAddr, bool, u16, u32)>>>;

async fn load(args: &[String]) -> anyhow::Result<()> {
    let box_sip: SocketAddr = args.get(1).context("box address")?.parse()?;
    let carrier_port: u16 = args.get(2).context("carrier port")?.parse()?;
    let n_calls: u32 = args.get(3).context("calls")?.parse()?;
    let counters = Arc::new(Counters::default());
    let streams: Streams = Arc::new(Mutex::new(Vec::new()));

    // One sender for every stream: a tick every 20 ms.
    {
        let (streams, counters) = (streams.clone(), counters.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let measuring = counters.counting_sends.load(Ordering::Relaxed);
                // Counted packets carry 0xAA as their first payload byte, so the receiver
                // counts exactly those (the relay forwards payloads untouched).
                let payload = [if measuring { 0xAAu8 } else { 0x55 }; 160];
                let mut streams = streams.lock().await;
                for (socket, remote, is_agent, seq, ts) in streams.iter_mut() {
                    let mut packet = Vec::with_capacity(172);
                    packet.extend_from_slice(&[0x80, 0x00]);
                    packet.extend_from_slice(&seq.to_be_bytes());
                    packet.extend_from_slice(&ts.to_be_bytes());
                    packet.extend_from_slice(&(u32::from(*is_agent) + 7).to_be_bytes());
                    packet.extend_from_slice(&payload);
                    *seq = seq.wrapping_add(1);
                    *ts = ts.wrapping_add(160);
                    if socket.try_send_to(&packet, *remote).is_ok() && measuring {
                        let counter = if *is_agent {
                            &counters.agent_sent
                        } else {
                            &counters.customer_sent
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    // The carrier: answers every INVITE with its own RTP socket.
    let carrier = Arc::new(UdpSocket::bind(("127.0.0.1", carrier_port)).await?);
    {
        let (carrier, streams, counters) = (carrier.clone(), streams.clone(), counters.clone());
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 8192];
            while let Ok((n_bytes, source)) = carrier.recv_from(&mut buffer).await {
                let Ok(Message::Request(request)) = sip_core::parse(&buffer[..n_bytes]) else {
                    continue;
                };
                let response = match request.method {
                    Method::Invite => match answer(&request, false, &streams, &counters).await {
                        Some(response) => response,
                        None => continue,
                    },
                    Method::Bye => Response::to_request(&request, 200, "OK", None),
                    _ => continue,
                };
                let _ = carrier.send_to(&response.to_bytes(), source).await;
            }
        });
    }

    // The phones: register (digest) and answer.
    for idx in 0..n_calls {
        let extension = format!("{}", 2000 + idx);
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let local = socket.local_addr()?;
        let (streams, counters) = (streams.clone(), counters.clone());
        tokio::spawn(async move {
            let register = |cseq: u32, authorization: Option<String>| {
                let mut request = Request::new(Method::Register, format!("sip:{box_sip}"))
                    .with_header(
                        "Via",
                        format!("SIP/2.0/UDP {local};branch=z9hG4bK{extension}r{cseq}"),
                    )
                    .with_header(
                        "From",
                        format!("<sip:{extension}@{box_sip}>;tag=p{extension}"),
                    )
                    .with_header("To", format!("<sip:{extension}@{box_sip}>"))
                    .with_header("Call-ID", format!("reg-{extension}"))
                    .with_header("CSeq", format!("{cseq} REGISTER"))
                    .with_header("Contact", format!("<sip:{extension}@{local}>"))
                    .with_header("Expires", "3600")
                    .with_header("Max-Forwards", "70");
                if let Some(value) = authorization {
                    request.headers.push("Authorization", value);
                }
                request.to_bytes()
            };
            let _ = socket.send_to(&register(1, None), box_sip).await;
            let mut buffer = vec![0u8; 8192];
            let mut registered = false;
            let mut attempt = 1u32;
            loop {
                // Like a real phone, retransmit until registered (UDP may drop a burst).
                let received = tokio::select! {
                    received = socket.recv_from(&mut buffer) => received,
                    _ = tokio::time::sleep(Duration::from_secs(1)), if !registered => {
                        attempt += 2;
                        let _ = socket.send_to(&register(attempt, None), box_sip).await;
                        continue;
                    }
                };
                let Ok((n_bytes, source)) = received else {
                    break;
                };
                match sip_core::parse(&buffer[..n_bytes]) {
                    Ok(Message::Response(response)) if response.status == 200 => registered = true,
                    Ok(Message::Response(response)) if response.status == 401 => {
                        let Some(Ok(challenge)) = response
                            .headers
                            .get("WWW-Authenticate")
                            .map(Challenge::parse)
                        else {
                            continue;
                        };
                        let credentials = Credentials {
                            username: extension.clone(),
                            password: "bench".into(),
                        };
                        let value = challenge.answer(
                            &credentials,
                            "REGISTER",
                            &format!("sip:{box_sip}"),
                            "c",
                            1,
                        );
                        let cseq = response.cseq().map(|cseq| cseq.number).unwrap_or(attempt) + 1;
                        let _ = socket.send_to(&register(cseq, Some(value)), box_sip).await;
                    }
                    Ok(Message::Request(request)) => {
                        let response = match request.method {
                            Method::Invite => {
                                match answer(&request, true, &streams, &counters).await {
                                    Some(response) => response,
                                    None => continue,
                                }
                            }
                            Method::Bye => Response::to_request(&request, 200, "OK", None),
                            _ => continue,
                        };
                        let _ = socket.send_to(&response.to_bytes(), source).await;
                    }
                    _ => {}
                }
            }
        });
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

/// Answers an INVITE with a fresh RTP socket, registers its stream and counts what it gets.
async fn answer(
    request: &Request,
    is_agent: bool,
    streams: &Streams,
    counters: &Arc<Counters>,
) -> Option<Response> {
    let offer = SessionDescription::parse(&request.body).ok()?;
    let audio = offer.audio()?;
    let remote = SocketAddr::new(audio.connection.or(offer.connection)?, audio.port);
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.ok()?);
    let port = socket.local_addr().ok()?.port();
    streams
        .lock()
        .await
        .push((socket.clone(), remote, is_agent, 1, 0));
    let counters = counters.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 2048];
        while let Ok((n_bytes, _)) = socket.recv_from(&mut buffer).await {
            if n_bytes > 12 && buffer[12] == 0xAA {
                let counter = if is_agent {
                    &counters.agent_received
                } else {
                    &counters.customer_received
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let sdp = format!(
        "v=0\r\no=gen 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let mut response = Response::to_request(
        request,
        200,
        "OK",
        Some(if is_agent { "agent" } else { "carrier" }),
    )
    .with_header("Contact", "<sip:gen@127.0.0.1>")
    .with_header("Content-Type", "application/sdp");
    response.body = sdp.into_bytes();
    Some(response)
}
