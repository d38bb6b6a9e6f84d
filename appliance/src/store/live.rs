//! What HQ's monitoring wall gets from this site ([`SiteLive`]): the driver's board (every
//! agent's state, the calls, the lines, the trunks' health), told with
//! [`Store::set_live_board`] whenever it may have changed, and today's figures from the
//! database, read when the link asks ([`Store::site_live_now`], every 500 ms while online).
//!
//! - The store remembers since when each agent has been in its state, so the driver only
//!   says what the state is now.
//! - The 30-day abandon figures scan a month of attempts: they are read at most once a
//!   minute ([`THIRTY_DAYS_EVERY_SECS`]).
//! - Disk space is the data directory's file system: below [`DISK_LOW_PERCENT`] free, or
//!   below [`DISK_LOW_BYTES`], the wall shows an alarm. Under the box's floor the recordings
//!   keeper stops recording new calls and says so ([`Store::set_recording_stopped`]): a
//!   second alarm, on the wall and on the site's status page.

use std::collections::HashMap;

use sync_protocol::{LiveAgent, LiveAgentState, LiveTask, SiteAlarm, SiteLive};

use super::{DbError, Store, china_minute, now_unix};

/// The 30-day abandon figures are read again after this long.
const THIRTY_DAYS_EVERY_SECS: i64 = 60;

/// Free space under this share of the disk raises the disk alarm.
const DISK_LOW_PERCENT: u64 = 5;

/// Free space under this raises the disk alarm whatever the disk's size (recordings of a
/// busy day take about that much).
const DISK_LOW_BYTES: u64 = 1 << 30;

/// The abandon-rate cap when no task runs (the tasks' default).
const DEFAULT_ABANDON_CAP_PERCENT: f64 = 3.0;

/// An agent as the driver sees them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardAgent {
    pub username: String,
    pub extension: String,
    pub state: LiveAgentState,
}

/// The driver's part of the wall: agents, calls, lines and trunk alarms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveBoard {
    pub agents: Vec<BoardAgent>,
    pub calls_ringing: u32,
    pub calls_queued: u32,
    pub longest_queued_s: u32,
    pub calls_talking: u32,
    pub lines_in_use: u32,
    pub lines_available: u32,
    /// Trunks down or not registered.
    pub alarms: Vec<SiteAlarm>,
}

/// The board as last told, with since when each agent has been in their state.
#[derive(Debug, Default)]
pub(super) struct LiveMemory {
    board: LiveBoard,
    /// username → (state, since unix ms).
    since: HashMap<String, (LiveAgentState, i64)>,
    /// `(answered, abandoned, read at)` over the last 30 days.
    thirty_days: Option<(u64, u64, i64)>,
    /// `(free, floor)` bytes while recording is stopped for want of disk.
    recording_stopped: Option<(u64, u64)>,
}

impl Store {
    /// The driver's board now. Cheap when nothing changed: the wall's figures are built
    /// only when the link asks.
    pub fn set_live_board(&self, board: LiveBoard) {
        let now_ms = now_unix() * 1000;
        let mut memory = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if memory.board == board {
            return;
        }
        let mut since = HashMap::with_capacity(board.agents.len());
        for agent in &board.agents {
            let kept = memory.since.get(&agent.username).filter(|(state, _)| *state == agent.state).map(|(_, at)| *at);
            since.insert(agent.username.clone(), (agent.state, kept.unwrap_or(now_ms)));
        }
        memory.since = since;
        memory.board = board;
    }

    /// Recording stopped because the disk has `free` bytes, under the `floor` (`Some`), or
    /// runs again (`None`).
    pub fn set_recording_stopped(&self, stopped: Option<(u64, u64)>) {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recording_stopped = stopped;
    }

    /// `(free, floor)` bytes while recording is stopped for want of disk.
    pub fn recording_stopped(&self) -> Option<(u64, u64)> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recording_stopped
    }

    /// The site as HQ's wall shows it, now.
    pub fn site_live_now(&self) -> Result<SiteLive, DbError> {
        let now = now_unix();
        let (board, since) = {
            let memory = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            (memory.board.clone(), memory.since.clone())
        };
        let today = self.today_counts(now)?;
        let (answered_30_days, abandoned_30_days) = self.thirty_day_counts(now)?;
        let (tasks, cap) = self.running_tasks()?;
        let mut agents: Vec<LiveAgent> = board
            .agents
            .into_iter()
            .map(|agent| {
                let since_ms = since.get(&agent.username).map_or(now * 1000, |(_, at)| *at);
                LiveAgent { username: agent.username, extension: agent.extension, state: agent.state, since_ms }
            })
            .collect();
        agents.sort_by(|a, b| a.username.cmp(&b.username));
        let mut alarms = board.alarms;
        if today.answered > 0 {
            let rate = today.abandoned as f64 * 100.0 / today.answered as f64;
            if rate > cap {
                alarms.push(SiteAlarm::AbandonOverCap { rate_percent: rate, cap_percent: cap });
            }
        }
        alarms.extend(self.disk_alarm());
        if let Some((free_bytes, floor_bytes)) = self.recording_stopped() {
            alarms.push(SiteAlarm::RecordingStopped { free_bytes, floor_bytes });
        }
        Ok(SiteLive {
            taken_at_ms: now * 1000,
            agents,
            calls_ringing: board.calls_ringing,
            calls_queued: board.calls_queued,
            longest_queued_s: board.longest_queued_s,
            calls_talking: board.calls_talking,
            lines_in_use: board.lines_in_use,
            lines_available: board.lines_available,
            dials_today: today.dials,
            connected_today: today.connected,
            answered_today: today.answered,
            abandoned_today: today.abandoned,
            answered_30_days,
            abandoned_30_days,
            abandon_cap_percent: cap,
            outbox_backlog: self.outbox_len()?,
            tasks,
            alarms,
        })
    }

    fn today_counts(&self, now: i64) -> Result<TodayCounts, DbError> {
        let midnight = now - china_minute(now) * 60 - now.rem_euclid(60);
        let conn = self.lock();
        Ok(conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'connected'), 0), COALESCE(SUM(answered_at IS NOT NULL), 0),
                    COALESCE(SUM(outcome = 'abandoned'), 0)
             FROM attempts WHERE started_at >= ?1",
            [midnight],
            |row| Ok(TodayCounts { dials: row.get(0)?, connected: row.get(1)?, answered: row.get(2)?, abandoned: row.get(3)? }),
        )?)
    }

    fn thirty_day_counts(&self, now: i64) -> Result<(u64, u64), DbError> {
        if let Some((answered, abandoned, at)) = self.live.lock().unwrap_or_else(|p| p.into_inner()).thirty_days
            && now - at < THIRTY_DAYS_EVERY_SECS
        {
            return Ok((answered, abandoned));
        }
        let (answered, abandoned): (u64, u64) = self.lock().query_row(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'abandoned'), 0) FROM attempts
             WHERE answered_at IS NOT NULL AND started_at >= ?1",
            [now - 30 * 86_400],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        self.live.lock().unwrap_or_else(|p| p.into_inner()).thirty_days = Some((answered, abandoned, now));
        Ok((answered, abandoned))
    }

    /// Running, verified tasks with the numbers they have left, and the strictest
    /// abandon-rate cap among them.
    fn running_tasks(&self) -> Result<(Vec<LiveTask>, f64), DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT b.batch_id, COALESCE(b.name, ''), b.abandon_cap,
                    (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = b.batch_id AND r.status = 'new')
             FROM batches b WHERE b.running = 1 AND b.verified = 1 ORDER BY b.batch_id",
        )?;
        let mut cap: Option<f64> = None;
        let tasks = statement
            .query_map([], |row| {
                let task_cap: Option<f64> = row.get(2)?;
                Ok((LiveTask { batch_id: row.get(0)?, name: row.get(1)?, remaining: row.get(3)? }, task_cap))
            })?
            .map(|row| {
                row.map(|(task, task_cap)| {
                    if let Some(task_cap) = task_cap {
                        cap = Some(cap.map_or(task_cap, |cap| cap.min(task_cap)));
                    }
                    task
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tasks, cap.unwrap_or(DEFAULT_ABANDON_CAP_PERCENT)))
    }

    fn disk_alarm(&self) -> Option<SiteAlarm> {
        let web_guard::probe::DiskSpace { free_bytes, total_bytes } = web_guard::probe::disk_space(self.path.parent()?)?;
        let low = free_bytes < DISK_LOW_BYTES || free_bytes.saturating_mul(100) < total_bytes.saturating_mul(DISK_LOW_PERCENT);
        low.then_some(SiteAlarm::DiskLow { free_bytes, total_bytes })
    }
}

struct TodayCounts {
    dials: u64,
    connected: u64,
    answered: u64,
    abandoned: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, state: LiveAgentState) -> BoardAgent {
        BoardAgent { username: name.into(), extension: "801".into(), state }
    }

    /// An agent keeps their "since" while their state stays; a new state starts it again.
    #[test]
    fn agents_keep_since_when_until_their_state_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_live_board(LiveBoard { agents: vec![agent("b", LiveAgentState::Available)], ..LiveBoard::default() });
        let first = store.site_live_now().unwrap();
        assert_eq!(first.agents.len(), 1);
        let since = first.agents[0].since_ms;
        // Make the remembered time older, as if the agent had been available a while.
        store.live.lock().unwrap().since.get_mut("b").unwrap().1 = since - 60_000;
        store.set_live_board(LiveBoard {
            agents: vec![agent("b", LiveAgentState::Available), agent("a", LiveAgentState::Ringing)],
            calls_ringing: 1,
            ..LiveBoard::default()
        });
        let second = store.site_live_now().unwrap();
        assert_eq!(second.agents.iter().map(|a| a.username.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(second.agents[1].since_ms, since - 60_000, "still available: since stays");
        assert_eq!(second.calls_ringing, 1);
        store.set_live_board(LiveBoard { agents: vec![agent("b", LiveAgentState::Talking)], ..LiveBoard::default() });
        let third = store.site_live_now().unwrap();
        assert!(third.agents[0].since_ms >= since, "talking now: since starts again");
        assert_eq!(third.abandon_cap_percent, DEFAULT_ABANDON_CAP_PERCENT);
        assert!(third.tasks.is_empty());
    }

    /// Today's counts and the running tasks come from the database; an abandon rate over
    /// the strictest running task's cap raises the alarm.
    #[test]
    fn todays_figures_running_tasks_and_the_abandon_alarm() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = now_unix();
        {
            let conn = store.lock();
            conn.execute_batch(
                "INSERT INTO batches (batch_id, name, running, verified, abandon_cap) VALUES
                    (7, '五月批次', 1, 1, 2.5), (8, '六月批次', 1, 1, 4.0), (9, '暂停批次', 0, 1, 1.0);
                 INSERT INTO batch_rows (batch_id, chunk_idx, row_idx, row_id, phone, fields, status) VALUES
                    (7, 0, 0, 1, '13800000001', x'', 'new'), (7, 0, 1, 2, '13800000002', x'', 'done'),
                    (8, 0, 0, 3, '13800000003', x'', 'new');",
            )
            .unwrap();
            let attempt = |started: i64, answered: bool, outcome: &str| {
                conn.execute(
                    "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at, answered_at, outcome)
                     VALUES (7, 0, 1, 2, '13800000002', 'done', ?1, ?2, ?3)",
                    rusqlite::params![started, answered.then_some(started), outcome],
                )
                .unwrap();
            };
            attempt(now, true, "connected");
            attempt(now, true, "abandoned");
            attempt(now, false, "no_answer");
            attempt(now - 3 * 86_400, true, "connected");
        }
        let live = store.site_live_now().unwrap();
        assert_eq!((live.dials_today, live.connected_today, live.answered_today, live.abandoned_today), (3, 1, 2, 1));
        assert_eq!((live.answered_30_days, live.abandoned_30_days), (3, 1));
        assert_eq!(live.abandon_cap_percent, 2.5, "the strictest running task's cap");
        let tasks: Vec<(u64, &str, u64)> = live.tasks.iter().map(|t| (t.batch_id, t.name.as_str(), t.remaining)).collect();
        assert_eq!(tasks, [(7, "五月批次", 1), (8, "六月批次", 1)]);
        assert!(
            live.alarms.contains(&SiteAlarm::AbandonOverCap { rate_percent: 50.0, cap_percent: 2.5 }),
            "{:?}",
            live.alarms
        );
    }
}
