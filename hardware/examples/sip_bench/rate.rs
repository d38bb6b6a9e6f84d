//! The `rate` arms: the box dialling SIPp's UAS, against SIPp through Kamailio (see the
//! example's doc for the set-up and what makes a step clean).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hardware::{
    CallId, DialRequest, HangupSide, LineEvent, Outcome, Telephony, TelephonyConfig, TrunkConfig,
};
use tokio::process::{Child, Command};

use crate::{arg, cpu_seconds, free_port, list};

/// The anchors' flags, given to every SIPp in both arms (see the example's doc for why).
const SIPP_FLAGS: [&str; 4] = [
    "-buff_size",
    "1048576",
    "-default_behaviors",
    "all,-abortunexp",
];
/// The UAS port the anchor Kamailio config relays to (it listens on 5060).
const KAMAILIO_UAS_PORT: u16 = 5080;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Outpost,
    Kamailio,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Outpost => "outpost",
            Arm::Kamailio => "kamailio",
        }
    }
}

/// What one rate step measured.
struct Step {
    arm: Arm,
    run: u32,
    rate: u32,
    calls: u32,
    /// Calls that ended well at both ends (the box or the SIPp UAC, and the SIPp UAS).
    completed: u32,
    failed: u64,
    /// Retransmissions any SIPp sent or received (a loss or a late answer somewhere).
    retransmissions: u64,
    /// Messages SIPp did not expect (a 180 behind its 200); not failures with `-abortunexp` off.
    unexpected: u64,
    /// Calls per second actually placed: all calls over the time from the first INVITE to the
    /// end of the last call, less the talk time.
    placed_rate: f64,
    /// CPU seconds of the system under test: our process, or Kamailio with its children.
    box_cpu: f64,
    /// Share of one core used by the SIPp UAC (Kamailio arm only) and by the SIPp UAS.
    uac_core: Option<f64>,
    uas_core: f64,
    /// Datagrams the kernel dropped on a full UDP receive buffer during the step (all
    /// sockets of the machine, from /proc/net/snmp `RcvbufErrors`).
    rcvbuf_drops: u64,
    load: String,
}

impl Step {
    fn clean(&self) -> bool {
        self.reasons().is_empty()
    }

    /// Why the step is not clean; empty when it is.
    fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.failed > 0 {
            reasons.push(format!("{} failed", self.failed));
        }
        if self.completed < self.calls {
            reasons.push(format!("{} not completed", self.calls - self.completed));
        }
        // A handful of retransmissions can come from a scheduling stall on a shared machine;
        // more than 1 in 1,000 calls means a queue is overflowing.
        if self.retransmissions * 1000 > u64::from(self.calls) {
            reasons.push(format!("{} retransmissions", self.retransmissions));
        }
        if self.placed_rate < 0.95 * f64::from(self.rate) {
            reasons.push(format!("placed only {:.0} calls/s", self.placed_rate));
        }
        reasons
    }

    fn verdict(&self) -> String {
        let mut verdict = if self.clean() {
            "clean".to_string()
        } else {
            self.reasons().join(", ")
        };
        // SIPp is single-threaded: near a full core it cannot go faster, whatever it drives.
        let busiest = self.uac_core.unwrap_or(0.0).max(self.uas_core);
        if busiest >= 0.85 {
            verdict.push_str(&format!(" (a SIPp at {:.0} % of a core)", busiest * 100.0));
        }
        verdict
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {}/{} | {} | {} | {} | {} | {:.0} | {:.3} | {} | {:.0} % | {} | {} |",
            self.run,
            self.arm.name(),
            self.rate,
            self.completed,
            self.calls,
            self.failed,
            self.retransmissions,
            self.unexpected,
            self.rcvbuf_drops,
            self.placed_rate,
            1000.0 * self.box_cpu / f64::from(self.calls.max(1)),
            self.uac_core
                .map(|share| format!("{:.0} %", share * 100.0))
                .unwrap_or_else(|| "-".into()),
            self.uas_core * 100.0,
            self.load,
            self.verdict()
        )
    }
}

pub(crate) async fn rate(args: &[String]) -> anyhow::Result<()> {
    let rates = list(&arg(
        args,
        "--rates",
        "200,500,1000,1500,2000,2500,3000,4000,5000,6000",
    ))?;
    let seconds: u32 = arg(args, "--seconds", "10").parse()?;
    let talk_ms: u32 = arg(args, "--talk-ms", "0").parse()?;
    let runs: u32 = arg(args, "--runs", "2").parse()?;
    let kamailio_cfg = arg(
        args,
        "--kamailio-cfg",
        "/work/shared/anchors/kamailio-stateful-proxy.cfg",
    );
    let maxbuffer: u32 = arg(args, "--kamailio-maxbuffer", "4194304").parse()?;
    // The box asks for 4 MiB socket buffers and SIPp gets 1 MiB; Kamailio's own default
    // (`maxbuffer`, 256 KiB) would make it the only party short of buffer.
    let cfg_dir = tempfile::tempdir()?;
    let kamailio_cfg = with_maxbuffer(Path::new(&kamailio_cfg), maxbuffer, cfg_dir.path())?;
    println!(
        "| run | arm | calls/s | completed | failed | retrans | unexpected | UDP drops | placed/s | box CPU ms/call | SIPp UAC core | SIPp UAS core | load 1/5/15 min | verdict |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for run in 1..=runs {
        // Alternate which arm goes first, so neither always meets the same neighbours' load.
        let order = if run % 2 == 1 {
            [Arm::Outpost, Arm::Kamailio]
        } else {
            [Arm::Kamailio, Arm::Outpost]
        };
        let mut best = [(Arm::Outpost, 0u32, true), (Arm::Kamailio, 0u32, true)];
        for &cps in &rates {
            for arm in order {
                let Some(entry) = best.iter_mut().find(|(which, _, _)| *which == arm) else {
                    continue;
                };
                if !entry.2 {
                    continue;
                }
                let step = match arm {
                    Arm::Outpost => ours_at(run, cps, seconds, talk_ms).await?,
                    Arm::Kamailio => kamailio_at(run, cps, seconds, talk_ms, &kamailio_cfg).await?,
                };
                println!("{}", step.row());
                if step.clean() {
                    entry.1 = cps;
                } else {
                    // The first step that is not clean ends this arm's sweep for the run.
                    entry.2 = false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if best.iter().all(|(_, _, going)| !going) {
                break;
            }
        }
        let ceiling = |going: bool| if going { " (highest tried)" } else { "" };
        let (ours, kamailio) = (best[0], best[1]);
        summary.push(format!(
            "run {run}: highest clean rate outpost {} calls/s{}, kamailio {} calls/s{}, ratio outpost / kamailio = {}",
            ours.1,
            ceiling(ours.2),
            kamailio.1,
            ceiling(kamailio.2),
            if kamailio.1 > 0 {
                format!("{:.2}", f64::from(ours.1) / f64::from(kamailio.1))
            } else {
                "n/a".into()
            }
        ));
    }
    println!();
    for line in summary {
        println!("{line}");
    }
    Ok(())
}

/// A copy of the Kamailio config in `dir` with `maxbuffer` (the ceiling of its UDP receive
/// buffer) set; 0 keeps the config as it is.
fn with_maxbuffer(cfg: &Path, bytes: u32, dir: &Path) -> anyhow::Result<String> {
    if bytes == 0 {
        return Ok(cfg.display().to_string());
    }
    let text = std::fs::read_to_string(cfg)
        .with_context(|| format!("read the Kamailio config {}", cfg.display()))?;
    // Global parameters must follow the `#!KAMAILIO` line and come before any route.
    let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    let copy = dir.join("kamailio.cfg");
    std::fs::write(&copy, format!("{first}\nmaxbuffer={bytes}\n{rest}"))?;
    Ok(copy.display().to_string())
}

/// Datagrams dropped so far on full UDP receive buffers, machine-wide.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

/// A SIPp command with the anchors' flags and its statistics written into `dir`.
fn sipp(dir: &Path) -> Command {
    let mut command = Command::new("/usr/bin/sipp");
    command
        .current_dir(dir)
        .args(SIPP_FLAGS)
        .args(["-nostdin", "-trace_stat", "-fd", "1", "-trace_counts"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

/// SIPp's built-in UAS for `calls` calls on `port`; it exits after the last one.
fn sipp_uas(dir: &Path, port: u16, calls: u32, seconds: u32) -> anyhow::Result<Child> {
    sipp(dir)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &calls.to_string()])
        .args(["-timeout", &format!("{}s", seconds + 45)])
        .spawn()
        .context("start /usr/bin/sipp (apt-get install sip-tester)")
}

/// Final counters of one SIPp, from its `-trace_stat` and `-trace_counts` files.
#[derive(Debug, Default)]
struct SippCounts {
    successful: u64,
    failed: u64,
    retransmissions: u64,
    unexpected: u64,
}

/// Reads the counters of the SIPp whose files start with `role` (`uac_`, `uas_`) in `dir`.
fn sipp_counts(dir: &Path, role: &str) -> anyhow::Result<SippCounts> {
    let mut counts = SippCounts::default();
    let mut found = false;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.starts_with(&format!("{role}_")) {
            continue;
        }
        let row = last_row(&path)?;
        let column = |wanted: &str| {
            row.iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| *value)
                .unwrap_or(0)
        };
        if name.ends_with("_counts.csv") {
            // Per message: `_Retrans` is what SIPp resent for a message it sends and what it
            // got again for one it receives; `_Timeout` a message that never came.
            for (name, value) in &row {
                if name.ends_with("_Retrans") {
                    counts.retransmissions += value;
                } else if name.ends_with("_Unexp") {
                    counts.unexpected += value;
                }
            }
        } else if name.ends_with("_.csv") {
            found = true;
            counts.successful = column("SuccessfulCall(C)");
            counts.failed = column("FailedCall(C)");
        }
    }
    if !found {
        bail!(
            "SIPp {role} wrote no statistics in {} (did it start?)",
            dir.display()
        );
    }
    Ok(counts)
}

/// The last row of a SIPp CSV (`;`-separated, header first) as (column, value) pairs.
fn last_row(path: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?;
    let last = lines
        .next_back()
        .with_context(|| format!("{} has no data row", path.display()))?;
    Ok(header
        .split(';')
        .zip(last.split(';'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().parse().unwrap_or(0)))
        .collect())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The user + system ticks (own, and of waited-for children) in a /proc/PID/stat line, with
/// the parent pid.
fn stat_ticks(stat: &str) -> Option<(u32, f64)> {
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let mut ticks = 0.0;
    for idx in 11..=14 {
        ticks += fields.get(idx)?.parse::<f64>().ok()?;
    }
    Some((ppid, ticks))
}

/// CPU seconds of a process and of all its direct children (Kamailio's workers).
fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut ticks = 0.0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in entries.flatten() {
        let Some(this) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if let Some((ppid, own)) = stat_ticks(&stat)
            && (this == pid || ppid == pid)
        {
            ticks += own;
        }
    }
    ticks / 100.0
}

/// CPU seconds of the children this process has waited for (grows as each SIPp is reaped).
fn reaped_children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    (13..=14)
        .map(|idx| {
            fields
                .get(idx)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum::<f64>()
        / 100.0
}

/// Waits for a SIPp that ends by itself (`-m`), killing it after `limit`.
async fn wait_sipp(child: &mut Child, limit: Duration) -> anyhow::Result<()> {
    if tokio::time::timeout(limit, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    Ok(())
}

async fn ours_at(run: u32, cps: u32, seconds: u32, talk_ms: u32) -> anyhow::Result<Step> {
    let dir = tempfile::tempdir()?;
    let carrier_port = free_port()?;
    let total = cps * seconds;
    let mut uas = sipp_uas(dir.path(), carrier_port, total, seconds)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (telephony, mut events) = Telephony::start(TelephonyConfig {
        trunks: vec![TrunkConfig::on_loopback("carrier", carrier_port, 1_000_000)],
        ..TelephonyConfig::on_loopback(dir.path())
    })
    .await?;
    let reaped_before = reaped_children_cpu_seconds();
    let drops_before = udp_rcvbuf_errors();
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let dialer = {
        let telephony = telephony.clone();
        tokio::spawn(async move {
            // Placed against the clock, not one per tick: the timer's 1 ms grain would
            // otherwise cap the rate at 1,000 calls/s.
            let began = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut placed = 0u32;
            while placed < total {
                tick.tick().await;
                let due = ((began.elapsed().as_secs_f64() * f64::from(cps)) as u32 + 1).min(total);
                while placed < due {
                    telephony.dial(DialRequest {
                        call: CallId(u64::from(placed)),
                        trunk: "carrier".into(),
                        number: format!("138{placed:08}"),
                        caller_id: "02155550000".into(),
                        ring_timeout: Duration::from_secs(30),
                    });
                    placed += 1;
                }
            }
        })
    };
    let (mut ok, mut failed) = (0u32, 0u32);
    let mut last_end = start;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(seconds) + 40);
    while ok + failed < total {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(LineEvent::Answered { call })) => {
                // The box hangs up after the talk time, as SIPp's UAC does with `-d`.
                if talk_ms == 0 {
                    telephony.hangup(call);
                } else {
                    let telephony = telephony.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(u64::from(talk_ms))).await;
                        telephony.hangup(call);
                    });
                }
            }
            Ok(Some(LineEvent::Ended {
                outcome,
                hangup_side,
                ..
            })) => {
                last_end = Instant::now();
                if outcome == Outcome::Abandoned && hangup_side == Some(HangupSide::System) {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let box_cpu = cpu_seconds() - cpu_before;
    let rcvbuf_drops = udp_rcvbuf_errors() - drops_before;
    dialer.abort();
    let active = (last_end - start).as_secs_f64() - f64::from(talk_ms) / 1000.0;
    wait_sipp(&mut uas, Duration::from_secs(u64::from(seconds) + 60)).await?;
    let uas_cpu = reaped_children_cpu_seconds() - reaped_before;
    drop(telephony);
    let counts = sipp_counts(dir.path(), "uas")?;
    let lost = u64::from(total - ok - failed);
    Ok(Step {
        arm: Arm::Outpost,
        run,
        rate: cps,
        calls: total,
        completed: ok.min(u32::try_from(counts.successful).unwrap_or(u32::MAX)),
        failed: u64::from(failed) + counts.failed + lost,
        retransmissions: counts.retransmissions,
        unexpected: counts.unexpected,
        placed_rate: f64::from(total) / active.max(1e-3),
        box_cpu,
        uac_core: None,
        uas_core: uas_cpu / active.max(1e-3),
        rcvbuf_drops,
        load: load_average(),
    })
}

async fn kamailio_at(
    run: u32,
    cps: u32,
    seconds: u32,
    talk_ms: u32,
    cfg: &str,
) -> anyhow::Result<Step> {
    let dir = tempfile::tempdir()?;
    let total = cps * seconds;
    let mut proxy = Command::new("/usr/sbin/kamailio")
        .args(["-f", cfg, "-DD", "-E", "-n", "2", "-m", "256", "-M", "32"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start /usr/sbin/kamailio (apt-get install kamailio)")?;
    let mut uas = sipp_uas(dir.path(), KAMAILIO_UAS_PORT, total, seconds)?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    if let Some(status) = proxy.try_wait()? {
        bail!(
            "kamailio exited at start ({status}): is 127.0.0.1:5060 taken, or does `kamailio -c -f {cfg}` find an error?"
        );
    }
    let proxy_pid = proxy.id().context("kamailio pid")?;
    let proxy_before = tree_cpu_seconds(proxy_pid);
    let uac_before = reaped_children_cpu_seconds();
    let drops_before = udp_rcvbuf_errors();
    // Enough open calls for the talk time, so `-l` never holds the rate back.
    let limit = (2 * cps * (talk_ms / 1000 + 1)).max(2000);
    let start = Instant::now();
    let _status = sipp(dir.path())
        .args(["-sn", "uac", "127.0.0.1:5060", "-i", "127.0.0.1"])
        .args(["-p", &free_port()?.to_string()])
        .args(["-d", &talk_ms.to_string(), "-r", &cps.to_string()])
        .args(["-m", &total.to_string(), "-l", &limit.to_string()])
        .args(["-timeout", &format!("{}s", seconds + 50), "-timeout_error"])
        .status()
        .await
        .context("run the SIPp UAC")?;
    let active = start.elapsed().as_secs_f64() - f64::from(talk_ms) / 1000.0;
    let uac_cpu = reaped_children_cpu_seconds() - uac_before;
    let box_cpu = tree_cpu_seconds(proxy_pid) - proxy_before;
    let rcvbuf_drops = udp_rcvbuf_errors() - drops_before;
    let uas_before = reaped_children_cpu_seconds();
    wait_sipp(&mut uas, Duration::from_secs(u64::from(seconds) + 60)).await?;
    let uas_cpu = reaped_children_cpu_seconds() - uas_before;
    // SIGTERM lets Kamailio stop its workers; SIGKILL would orphan them on port 5060.
    let _ = Command::new("kill")
        .args(["-TERM", &proxy_pid.to_string()])
        .status()
        .await;
    if tokio::time::timeout(Duration::from_secs(10), proxy.wait())
        .await
        .is_err()
    {
        let _ = proxy.start_kill();
        let _ = proxy.wait().await;
    }
    let uac = sipp_counts(dir.path(), "uac")?;
    let uas_counts = sipp_counts(dir.path(), "uas")?;
    Ok(Step {
        arm: Arm::Kamailio,
        run,
        rate: cps,
        calls: total,
        completed: u32::try_from(uac.successful.min(uas_counts.successful)).unwrap_or(u32::MAX),
        failed: uac.failed + uas_counts.failed,
        retransmissions: uac.retransmissions + uas_counts.retransmissions,
        unexpected: uac.unexpected + uas_counts.unexpected,
        placed_rate: f64::from(total) / active.max(1e-3),
        box_cpu,
        uac_core: Some(uac_cpu / active.max(1e-3)),
        uas_core: uas_cpu / active.max(1e-3),
        rcvbuf_drops,
        load: load_average(),
    })
}
