//! Capacity benchmark of the telephony lines (not a test; figures go to docs/benchmarks.md).
//!
//! `rate`: two arms, stepped up in call rate (10 s per step, as the anchors in
//! `shared/spec/ANCHORS.md`), each until its first step that is not clean:
//! - `outpost`: the box dials SIPp's built-in UAS (`-sn uas`: 180, 200, ACK, then the box
//!   sends BYE after `--talk-ms`), so the box is the UAC;
//! - `kamailio`: SIPp's built-in UAC -> Kamailio as a stateful proxy (`--kamailio-cfg`, on
//!   127.0.0.1:5060, relaying to 127.0.0.1:5080) -> the same SIPp UAS, the anchors' set-up.
//!
//! Every SIPp runs with the anchors' `-buff_size 1048576` (else SIPp is the limit) and
//! `-default_behaviors all,-abortunexp` (else a 180 reordered behind the 200 counts as a
//! failed call). A step is clean when every call completed, no call failed, retransmissions
//! stayed within 0.1 % of the calls, and the calls were placed at 95 % or more of the target
//! rate. The arms alternate step by step and the whole sweep runs `--runs` times, because the
//! machine is shared; each step prints the load average, the CPU per call of the box (our
//! process, or Kamailio and all its children) and how much of one core each SIPp used, so a
//! step where SIPp itself was the limit can be told apart, and the kernel's UDP receive-buffer
//! drops during the step. Kamailio runs with `maxbuffer` raised to the 4 MiB the box asks
//! for its own SIP socket (`--kamailio-maxbuffer`, 0 for the config as it is).
//!
//! `concurrency`: N calls bridged to N registered agents, RTP both ways (PCMU, 20 ms) and
//! recording on. A load generator runs as a child process (this binary, `load` mode: the
//! simulated carrier and N simulated phones of `sip-peers`, which answer at once and register
//! with digest), so the box's CPU and memory are its own.
//! Reports the box's CPU share, resident memory and the RTP loss per direction.
//!
//! ```sh
//! cargo build --release -p hardware --example sip_bench
//! target/release/examples/sip_bench rate --rates 200,500,1000,1500,2000,2500,3000,4000 --runs 2
//! target/release/examples/sip_bench concurrency --calls 100,200,500 --seconds 20
//! ```

mod concurrency;
mod rate;

use anyhow::{Context as _, bail};

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

const USAGE: &str = "usage: sip_bench rate [--rates 200,500,1000] [--seconds 10] [--talk-ms 0] [--runs 2] [--kamailio-cfg PATH] [--kamailio-maxbuffer BYTES] | concurrency [--calls 100,200,500] [--seconds 20]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("rate") => rate::rate(&args).await,
        Some("concurrency") => concurrency::concurrency(&args).await,
        Some("load") => concurrency::load(&args).await,
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
