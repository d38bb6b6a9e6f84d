//! The hub store's sync-up intake alone, without the link or the site: the catch-up
//! benchmark's day (`tests/tests/sync_catchup.rs`, the same events) applied through
//! `HubStore::apply_up_batch` in runs of 1,024 into a fresh store, timed in wall and in
//! this process's CPU seconds (the CPU time is what other work on a shared machine
//! disturbs least).
//!
//! `cargo run -p hq-hub --example intake-bench -- [rounds]`

use std::time::Instant;

use sync_link::HubStore;
use sync_protocol::{
    BusinessRecord, CallAttempt, Callback, CallbackState, HangupSide, Outcome, UpEntry, UpEvent,
};

/// The catch-up test's day: every fourth attempt answered and followed by its record,
/// every fifth record by a callback.
fn a_day() -> Vec<UpEvent> {
    let day_start = 1_767_225_600;
    let (attempts, records_max, callbacks_max, agents) = (40_000u64, 10_000u64, 2_000u64, 100u64);
    let mut events = Vec::new();
    let mut records = 0;
    let mut callbacks = 0;
    for attempt_id in 1..=attempts {
        let started_at = day_start + (attempt_id as i64 * 36_000 / attempts as i64);
        let agent = format!("{}", 8001 + attempt_id % agents);
        let answered = attempt_id % 4 == 0;
        events.push(UpEvent::CallAttempt(CallAttempt {
            attempt_id,
            batch_id: 1 + attempt_id % 3,
            row_id: attempt_id,
            started_at,
            answered_at: answered.then_some(started_at + 8),
            ended_at: started_at + if answered { 95 } else { 30 },
            outcome: if answered {
                Outcome::Connected
            } else {
                Outcome::NoAnswer
            },
            hangup_side: Some(HangupSide::Customer),
            agent: answered.then(|| agent.clone()),
            talk_seconds: if answered { 87 } else { 0 },
            recording_sha256: answered.then(|| format!("{attempt_id:064x}")),
            kind: sync_protocol::AttemptKind::Predictive,
        }));
        if answered && records < records_max {
            records += 1;
            events.push(UpEvent::BusinessRecord(BusinessRecord {
                attempt_id,
                batch_id: 1 + attempt_id % 3,
                row_id: attempt_id,
                agent: agent.clone(),
                saved_at: started_at + 120,
                values: vec![
                    ("result".into(), "有意向".into()),
                    (
                        "remark".into(),
                        format!("客户询问套餐 {attempt_id} 的资费，约下周再联系"),
                    ),
                ],
            }));
            if records % 5 == 0 && callbacks < callbacks_max {
                callbacks += 1;
                events.push(UpEvent::Callback(Callback {
                    callback_id: callbacks,
                    batch_id: 1 + attempt_id % 3,
                    row_id: attempt_id,
                    agent: Some(agent),
                    due_at: started_at + 86_400,
                    note: "明天上午回访".into(),
                    state: CallbackState::Scheduled,
                    changed_at: started_at + 125,
                }));
            }
        }
    }
    events
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let entries: Vec<UpEntry> = a_day()
        .into_iter()
        .enumerate()
        .map(|(i, event)| UpEntry {
            epoch: 7,
            seq: i as u64 + 1,
            event,
        })
        .collect();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let hub = hq_hub::store::Store::open(dir.path()).unwrap();
        let site = hub.create_site("一天离线的职场").unwrap();
        let c = cpu();
        let t = Instant::now();
        for chunk in entries.chunks(1024) {
            hub.apply_up_batch(site as u64, chunk).unwrap();
        }
        println!(
            "intake {:.3} s wall {:.2} s cpu",
            t.elapsed().as_secs_f64(),
            cpu() - c
        );
    }
}

/// This process's user + system CPU seconds.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
