//! Helpers of the engine's tests: a real SQLite file with the engine's schema, and facts.

#![allow(dead_code)]

use reports::{
    record_attempt, record_business, AttemptFact, Direction, Engine, HangupSide, Outcome, Pending, ReportError, SCHEMA,
};
use rusqlite::Connection;

pub fn open() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("store.db")).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    (dir, conn)
}

/// [`open`], then the later migration of the facts' table, as the hub's store has it.
pub fn open_keyed() -> (tempfile::TempDir, Connection) {
    let (dir, conn) = open();
    conn.execute_batch(reports::FACTS_WITHOUT_ROWID).unwrap();
    (dir, conn)
}

pub fn fact(site: i64, attempt: i64, started_at: i64) -> AttemptFact {
    AttemptFact {
        project: 1,
        site,
        attempt,
        team: "A组".to_owned(),
        agent: "8001".to_owned(),
        extension: "801".to_owned(),
        batch: 10,
        account: "hq".to_owned(),
        direction: Direction::Outbound,
        hangup: Some(HangupSide::Customer),
        outcome: Outcome::Connected,
        ring_seconds: 5,
        queue_seconds: 1,
        talk_seconds: 60,
        ivr_seconds: 0,
        started_at,
        values: None,
    }
}

/// Records `fact` in its own transaction and hands the deltas to `engine` after the commit,
/// as a store does.
pub fn write_attempt(conn: &mut Connection, engine: &Engine, fact: &AttemptFact) -> Result<(), ReportError> {
    let tx = conn.transaction()?;
    let mut pending = Pending::default();
    record_attempt(&tx, fact, &mut pending)?;
    tx.commit()?;
    engine.apply(pending);
    Ok(())
}

pub fn write_record(
    conn: &mut Connection,
    engine: &Engine,
    site: i64,
    attempt: i64,
    values: &[(&str, &str)],
) -> Result<(), ReportError> {
    let values: Vec<(String, String)> = values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let tx = conn.transaction()?;
    let mut pending = Pending::default();
    record_business(&tx, site, attempt, &values, &mut pending)?;
    tx.commit()?;
    engine.apply(pending);
    Ok(())
}
