//! Today's calls as the home page (首页) counts them: dials, connects, answers and abandons
//! per hour of the day, from the synced attempts, for the sites a viewer may see.
//!
//! "Today" and its hours are local to a UTC offset the caller names (China time unless the
//! hub is told otherwise), so an HQ outside China can still see its own day.

use super::{DbError, Scope, Store};

/// One hour of today.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourCounts {
    pub dials: u64,
    pub connected: u64,
    pub answered: u64,
    pub abandoned: u64,
}

/// Where the local day containing `now` starts (unix seconds), at `offset_secs` from UTC.
pub fn day_start(now: i64, offset_secs: i32) -> i64 {
    let local = now + i64::from(offset_secs);
    local - local.rem_euclid(86_400) - i64::from(offset_secs)
}

impl Store {
    /// The offset from UTC "today" is counted in at this moment, seconds east: the
    /// report zone's (China time unless `serve --time-zone` says otherwise), so the home
    /// page and the reports agree on where a day starts.
    pub fn utc_offset_secs(&self) -> i32 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.report_zone().offset_at(now) as i32
    }

    /// Today's attempts per local hour (24 entries) over the sites `scope` may see.
    pub fn today_by_hour(&self, scope: &Scope, now: i64, offset_secs: i32) -> Result<[HourCounts; 24], DbError> {
        let start = day_start(now, offset_secs);
        let conn = self.conn();
        // `call_attempts_started` makes this a range over today's rows only.
        let mut stmt = conn.prepare_cached(
            "SELECT site_id, (started_at - ?1) / 3600, COUNT(*), COALESCE(SUM(outcome = 'connected'), 0),
                    COALESCE(SUM(answered_at IS NOT NULL), 0), COALESCE(SUM(outcome = 'abandoned'), 0)
             FROM call_attempts WHERE started_at >= ?1 AND started_at < ?1 + 86400
             GROUP BY site_id, (started_at - ?1) / 3600",
        )?;
        let mut hours = [HourCounts::default(); 24];
        let rows = stmt.query_map([start], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?))
        })?;
        for row in rows {
            let (site, hour, dials, connected, answered, abandoned) = row?;
            if !scope.site(site) {
                continue;
            }
            let Some(slot) = usize::try_from(hour).ok().and_then(|hour| hours.get_mut(hour)) else { continue };
            slot.dials += dials as u64;
            slot.connected += connected as u64;
            slot.answered += answered as u64;
            slot.abandoned += abandoned as u64;
        }
        Ok(hours)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::store::Account;

    const CHINA: i32 = 8 * 3600;

    #[test]
    fn the_day_starts_at_local_midnight() {
        // 2026-12-07 01:30 China time is 2026-12-06 17:30 UTC.
        let now = 1_796_578_200;
        assert_eq!(day_start(now, CHINA), 1_796_572_800);
        assert_eq!(day_start(now, 0), 1_796_515_200);
    }

    /// Attempts land in their local hour, yesterday's are left out, and a scoped viewer
    /// counts only its own sites.
    #[test]
    fn attempts_are_counted_per_local_hour_within_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let start = day_start(1_796_578_200, CHINA);
        let insert = |site: i64, id: i64, at: i64, outcome: &str, answered: bool| {
            store
                .conn()
                .execute(
                    "INSERT INTO call_attempts (site_id, attempt_id, batch_id, row_id, started_at, answered_at, ended_at, outcome, talk_seconds)
                     VALUES (?1, ?2, 1, ?2, ?3, ?4, ?3, ?5, 0)",
                    params![site, id, at, answered.then_some(at), outcome],
                )
                .unwrap();
        };
        insert(1, 1, start + 9 * 3600 + 5, "connected", true);
        insert(1, 2, start + 9 * 3600 + 3599, "no_answer", false);
        insert(1, 3, start + 10 * 3600, "abandoned", true);
        insert(2, 4, start + 9 * 3600, "connected", true);
        insert(1, 5, start - 1, "connected", true);
        let admin = Scope::all(Account { id: 1, username: "a".into(), is_admin: true });
        let hours = store.today_by_hour(&admin, start + 11 * 3600, CHINA).unwrap();
        assert_eq!(hours[9], HourCounts { dials: 3, connected: 2, answered: 2, abandoned: 0 });
        assert_eq!(hours[10], HourCounts { dials: 1, connected: 0, answered: 1, abandoned: 1 });
        assert_eq!(hours.iter().map(|h| h.dials).sum::<u64>(), 4, "yesterday's attempt is not today's");
        let only_site_2 = Scope::for_sites_in_test(Account { id: 2, username: "s".into(), is_admin: false }, &[2]);
        let hours = store.today_by_hour(&only_site_2, start + 11 * 3600, CHINA).unwrap();
        assert_eq!(hours.iter().map(|h| h.dials).sum::<u64>(), 1);
    }
}
