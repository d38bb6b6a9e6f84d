//! The store's figures for `/readyz` and `/metrics`: what an operator's monitoring asks of
//! the box without signing in. Each is one indexed count; a scrape every 15 s costs nothing.

use super::hq::china_minute;
use super::{DbError, Store};

/// The site's backlog and today's quality, as of one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthFigures {
    /// Entries written for HQ and not yet acknowledged by it.
    pub outbox: u64,
    /// Finished calls' recordings HQ has not received.
    pub recordings_pending: u64,
    /// Answered calls today (China time) and the abandoned among them.
    pub answered_today: u64,
    pub abandoned_today: u64,
    /// The same over the last 30 days.
    pub answered_30_days: u64,
    pub abandoned_30_days: u64,
}

impl Store {
    /// Reads [`HealthFigures`] as of `now` (unix seconds); also proves the store answers.
    pub fn health_figures(&self, now: i64) -> Result<HealthFigures, DbError> {
        let midnight = now - china_minute(now) * 60 - now.rem_euclid(60);
        let conn = self.lock();
        let outbox: i64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?;
        let recordings_pending: i64 = conn.query_row(
            "SELECT COUNT(*) FROM attempts
             WHERE recording_sha256 IS NOT NULL AND recording_uploaded = 0 AND state = 'done'",
            [],
            |row| row.get(0),
        )?;
        let mut answered = conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'abandoned'), 0) FROM attempts
             WHERE answered_at IS NOT NULL AND started_at >= ?1",
        )?;
        let mut since = |from: i64| -> Result<(u64, u64), DbError> {
            let (all, abandoned): (i64, i64) = answered.query_row([from], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok((all.max(0) as u64, abandoned.max(0) as u64))
        };
        let (answered_today, abandoned_today) = since(midnight)?;
        let (answered_30_days, abandoned_30_days) = since(now - 30 * 86_400)?;
        Ok(HealthFigures {
            outbox: outbox.max(0) as u64,
            recordings_pending: recordings_pending.max(0) as u64,
            answered_today,
            abandoned_today,
            answered_30_days,
            abandoned_30_days,
        })
    }
}
