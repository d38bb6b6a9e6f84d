//! The engine's tables in the writer's SQLite file and the writes the store makes inside its
//! own transaction.
//!
//! - `report_facts`: one row per `(site, attempt)`: the attempt's fact (once it arrived) and
//!   its business record's single-choice values (whenever they arrived). It is what lets a
//!   redelivery or a re-saved record take back the old contribution before adding the new.
//! - `report_cells`: the finest aggregate, per UTC hour and full dimension key, with every
//!   base statistic summed. The in-memory cubes of [`crate::Engine`] are rebuilt from it at
//!   start; it is never scanned by a report.
//! - `report_meta.version`: bumped once by each transaction that changed a cell, so an
//!   engine that missed a commit's deltas (a write made without applying them) notices and
//!   reloads instead of answering stale.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::fact::{hangup_code, hangup_from_code, AttemptFact, Direction, Measures, Outcome, N_MEASURES};

/// The engine's tables: each store appends this to its own migration list.
pub const SCHEMA: &str = "
CREATE TABLE report_facts (
    site_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL,
    has_attempt INTEGER NOT NULL DEFAULT 0,
    utc_hour INTEGER NOT NULL DEFAULT 0,
    project_id INTEGER NOT NULL DEFAULT 0,
    team TEXT NOT NULL DEFAULT '',
    agent TEXT NOT NULL DEFAULT '',
    extension TEXT NOT NULL DEFAULT '',
    batch_id INTEGER NOT NULL DEFAULT 0,
    account TEXT NOT NULL DEFAULT '',
    direction INTEGER NOT NULL DEFAULT 0,
    hangup INTEGER NOT NULL DEFAULT 0,
    outcome INTEGER NOT NULL DEFAULT 0,
    ring_s INTEGER NOT NULL DEFAULT 0,
    queue_s INTEGER NOT NULL DEFAULT 0,
    talk_s INTEGER NOT NULL DEFAULT 0,
    ivr_s INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL DEFAULT 0,
    combo TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (site_id, attempt_id)
);
CREATE TABLE report_cells (
    utc_hour INTEGER NOT NULL,
    cell TEXT NOT NULL,
    m0 INTEGER NOT NULL, m1 INTEGER NOT NULL, m2 INTEGER NOT NULL, m3 INTEGER NOT NULL,
    m4 INTEGER NOT NULL, m5 INTEGER NOT NULL, m6 INTEGER NOT NULL, m7 INTEGER NOT NULL,
    m8 INTEGER NOT NULL, m9 INTEGER NOT NULL, m10 INTEGER NOT NULL, m11 INTEGER NOT NULL,
    m12 INTEGER NOT NULL, m13 INTEGER NOT NULL, m14 INTEGER NOT NULL, m15 INTEGER NOT NULL,
    PRIMARY KEY (utc_hour, cell)
) WITHOUT ROWID;
CREATE TABLE report_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO report_meta (key, value) VALUES ('version', 0);
";

/// A later migration of the facts' table, which each store appends after [`SCHEMA`]: the
/// facts keyed by `(site_id, attempt_id)` alone (`WITHOUT ROWID`), so writing one touches
/// one B-tree instead of a table and its primary-key index.
pub const FACTS_WITHOUT_ROWID: &str = "
CREATE TABLE report_facts_keyed (
    site_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL,
    has_attempt INTEGER NOT NULL DEFAULT 0,
    utc_hour INTEGER NOT NULL DEFAULT 0,
    project_id INTEGER NOT NULL DEFAULT 0,
    team TEXT NOT NULL DEFAULT '',
    agent TEXT NOT NULL DEFAULT '',
    extension TEXT NOT NULL DEFAULT '',
    batch_id INTEGER NOT NULL DEFAULT 0,
    account TEXT NOT NULL DEFAULT '',
    direction INTEGER NOT NULL DEFAULT 0,
    hangup INTEGER NOT NULL DEFAULT 0,
    outcome INTEGER NOT NULL DEFAULT 0,
    ring_s INTEGER NOT NULL DEFAULT 0,
    queue_s INTEGER NOT NULL DEFAULT 0,
    talk_s INTEGER NOT NULL DEFAULT 0,
    ivr_s INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL DEFAULT 0,
    combo TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (site_id, attempt_id)
) WITHOUT ROWID;
INSERT INTO report_facts_keyed (site_id, attempt_id, has_attempt, utc_hour, project_id, team, agent, extension,
    batch_id, account, direction, hangup, outcome, ring_s, queue_s, talk_s, ivr_s, started_at, combo)
SELECT site_id, attempt_id, has_attempt, utc_hour, project_id, team, agent, extension,
    batch_id, account, direction, hangup, outcome, ring_s, queue_s, talk_s, ivr_s, started_at, combo
FROM report_facts;
DROP TABLE report_facts;
ALTER TABLE report_facts_keyed RENAME TO report_facts;
";

/// A failed engine write or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("report store: a stored cell key is damaged: {0}")]
    BadCell(#[from] serde_json::Error),
}

/// The full dimension key of a cell (everything but the hour).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    pub project: i64,
    pub site: i64,
    pub team: String,
    pub agent: String,
    pub extension: String,
    pub batch: i64,
    pub account: String,
    pub direction: u8,
    pub hangup: u8,
    /// The business record's single-choice values, canonical (sorted by key) JSON.
    pub combo: String,
}

impl CellKey {
    fn of(fact: &AttemptFact, combo: &str) -> CellKey {
        CellKey {
            project: fact.project,
            site: fact.site,
            team: fact.team.clone(),
            agent: fact.agent.clone(),
            extension: fact.extension.clone(),
            batch: fact.batch,
            account: fact.account.clone(),
            direction: fact.direction.code(),
            hangup: hangup_code(fact.hangup),
            combo: combo.to_owned(),
        }
    }

    /// The text stored in `report_cells.cell`.
    pub fn encode(&self) -> String {
        serde_json::to_string(&(
            self.project,
            self.site,
            &self.team,
            &self.agent,
            &self.extension,
            self.batch,
            &self.account,
            self.direction,
            self.hangup,
            &self.combo,
        ))
        .unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<CellKey, serde_json::Error> {
        type Tuple = (i64, i64, String, String, String, i64, String, u8, u8, String);
        let t: Tuple = serde_json::from_str(text)?;
        Ok(CellKey {
            project: t.0,
            site: t.1,
            team: t.2,
            agent: t.3,
            extension: t.4,
            batch: t.5,
            account: t.6,
            direction: t.7,
            hangup: t.8,
            combo: t.9,
        })
    }
}

/// Canonical text of a record's single-choice values: sorted by key, the last value of a
/// key kept, empty values dropped (an empty choice is no choice).
pub fn canonical_combo(values: &[(String, String)]) -> String {
    let mut map = std::collections::BTreeMap::new();
    for (key, value) in values {
        if value.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
    let pairs: Vec<(&String, &String)> = map.iter().collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

/// The changes one transaction made to the cells, for [`crate::Engine::apply`] once it
/// committed; one per transaction. Dropped with a rolled-back transaction.
///
/// A [`Pending::buffered`] one keeps the cell changes in memory, summed per cell, and writes
/// them with [`flush`] just before the commit: a sync-up run of a thousand attempts touches
/// far fewer cells than attempts (unanswered attempts share a cell per hour and batch), and
/// each cell is then written, and its key encoded, once per transaction.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    /// The version before this transaction's first write.
    pub(crate) from_version: Option<i64>,
    pub(crate) to_version: i64,
    pub(crate) deltas: Vec<(i64, CellKey, Measures)>,
    /// `Some` for a buffered transaction: the summed, not yet written, cell changes.
    summed: Option<HashMap<(i64, CellKey), Measures>>,
}

impl Pending {
    /// A transaction whose cell changes wait in memory until [`flush`]; the store must call
    /// it before committing, or the cells miss the transaction's attempts.
    pub fn buffered() -> Pending {
        Pending { summed: Some(HashMap::new()), ..Pending::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.from_version.is_none() && self.summed.as_ref().is_none_or(HashMap::is_empty)
    }
}

/// Writes a buffered transaction's summed cell changes (see [`Pending::buffered`]), bumping
/// the version once; a no-op for an unbuffered or unchanged one. Call it inside `tx`, just
/// before the commit.
pub fn flush(tx: &Transaction<'_>, pending: &mut Pending) -> Result<(), ReportError> {
    let Some(summed) = pending.summed.as_mut() else { return Ok(()) };
    let changes: Vec<((i64, CellKey), Measures)> = summed.drain().filter(|(_, m)| m.iter().any(|v| *v != 0)).collect();
    if changes.is_empty() {
        return Ok(());
    }
    if pending.from_version.is_none() {
        bump_version(tx, pending)?;
    }
    for ((hour, key), m) in changes {
        add_to_cell(tx, hour, &key, &m)?;
        pending.deltas.push((hour, key, m));
    }
    Ok(())
}

fn bump_version(tx: &Transaction<'_>, pending: &mut Pending) -> Result<(), ReportError> {
    let version: i64 = tx
        .prepare_cached("UPDATE report_meta SET value = value + 1 WHERE key = 'version' RETURNING value")?
        .query_row([], |r| r.get(0))?;
    pending.from_version.get_or_insert(version - 1);
    pending.to_version = version;
    Ok(())
}

fn add_to_cell(tx: &Transaction<'_>, hour: i64, key: &CellKey, m: &Measures) -> Result<(), ReportError> {
    let cell = key.encode();
    tx.prepare_cached(
        "INSERT INTO report_cells (utc_hour, cell, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (utc_hour, cell) DO UPDATE SET
             m0 = m0 + excluded.m0, m1 = m1 + excluded.m1, m2 = m2 + excluded.m2, m3 = m3 + excluded.m3,
             m4 = m4 + excluded.m4, m5 = m5 + excluded.m5, m6 = m6 + excluded.m6, m7 = m7 + excluded.m7,
             m8 = m8 + excluded.m8, m9 = m9 + excluded.m9, m10 = m10 + excluded.m10, m11 = m11 + excluded.m11,
             m12 = m12 + excluded.m12, m13 = m13 + excluded.m13, m14 = m14 + excluded.m14, m15 = m15 + excluded.m15",
    )?
    .execute(params![
        hour, cell, m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], m[12], m[13], m[14],
        m[15]
    ])?;
    if m[0] < 0 {
        // m0 counts attempts: a cell none is left in is removed, so the cells stay the
        // exact set of non-empty combinations.
        tx.prepare_cached("DELETE FROM report_cells WHERE utc_hour = ?1 AND cell = ?2 AND m0 = 0")?
            .execute(params![hour, cell])?;
    }
    Ok(())
}

fn move_contribution(
    tx: &Transaction<'_>,
    pending: &mut Pending,
    old: Option<(i64, CellKey, Measures)>,
    new: Option<(i64, CellKey, Measures)>,
) -> Result<(), ReportError> {
    if old == new {
        return Ok(());
    }
    if let Some(summed) = pending.summed.as_mut() {
        // Buffered: summed per cell, written by `flush`.
        if let Some((hour, key, m)) = old {
            let cell = summed.entry((hour, key)).or_insert([0; N_MEASURES]);
            cell.iter_mut().zip(m).for_each(|(c, v)| *c -= v);
        }
        if let Some((hour, key, m)) = new {
            let cell = summed.entry((hour, key)).or_insert([0; N_MEASURES]);
            cell.iter_mut().zip(m).for_each(|(c, v)| *c += v);
        }
        return Ok(());
    }
    // One version per transaction: the engine only needs to know where a commit's changes
    // start and end.
    if pending.from_version.is_none() {
        bump_version(tx, pending)?;
    }
    if let Some((hour, key, m)) = old {
        let neg = m.map(|v| -v);
        add_to_cell(tx, hour, &key, &neg)?;
        pending.deltas.push((hour, key, neg));
    }
    if let Some((hour, key, m)) = new {
        add_to_cell(tx, hour, &key, &m)?;
        pending.deltas.push((hour, key, m));
    }
    Ok(())
}

/// Moves one attempt's contribution from `old` (its fact and record values as counted
/// before, `None` if it was not counted) to `new`, for a store that keeps the facts in its own
/// rows instead of `report_facts` (HQ keeps them in its call records, see the hub's
/// `report_facts`). A buffered `pending` sums it until [`flush`].
pub fn move_attempt(
    tx: &Transaction<'_>,
    pending: &mut Pending,
    old: Option<(&AttemptFact, &str)>,
    new: Option<(&AttemptFact, &str)>,
) -> Result<(), ReportError> {
    let old = old.map(|(fact, combo)| contribution(fact, combo));
    let new = new.map(|(fact, combo)| contribution(fact, combo));
    move_contribution(tx, pending, old, new)
}

/// The stored fact of `(site, attempt)`, if its attempt arrived, and its stored combo.
fn stored(tx: &Transaction<'_>, site: i64, attempt: i64) -> Result<Option<(Option<AttemptFact>, String)>, ReportError> {
    let row = tx
        .prepare_cached(
            "SELECT has_attempt, project_id, team, agent, extension, batch_id, account, direction, hangup, outcome,
                    ring_s, queue_s, talk_s, ivr_s, started_at, combo
             FROM report_facts WHERE site_id = ?1 AND attempt_id = ?2",
        )?
        .query_row(params![site, attempt], |r| {
            let has: bool = r.get(0)?;
            let fact = AttemptFact {
                project: r.get(1)?,
                site,
                attempt,
                team: r.get(2)?,
                agent: r.get(3)?,
                extension: r.get(4)?,
                batch: r.get(5)?,
                account: r.get(6)?,
                direction: Direction::from_code(r.get(7)?),
                hangup: hangup_from_code(r.get(8)?),
                outcome: Outcome::from_code(r.get(9)?),
                ring_seconds: r.get(10)?,
                queue_seconds: r.get(11)?,
                talk_seconds: r.get(12)?,
                ivr_seconds: r.get(13)?,
                started_at: r.get(14)?,
                values: None,
            };
            Ok((has.then_some(fact), r.get::<_, String>(15)?))
        })
        .optional()?;
    Ok(row)
}

fn contribution(fact: &AttemptFact, combo: &str) -> (i64, CellKey, Measures) {
    (fact.started_at.div_euclid(3600), CellKey::of(fact, combo), fact.measures())
}

const FACT_COLUMNS: &str = "site_id, attempt_id, has_attempt, utc_hour, project_id, team, agent, extension,
    batch_id, account, direction, hangup, outcome, ring_s, queue_s, talk_s, ivr_s, started_at, combo";

fn fact_params<'a>(fact: &'a AttemptFact, hour: &'a i64, codes: &'a [u8; 3], combo: &'a &'a str) -> [&'a dyn rusqlite::ToSql; 18] {
    [
        &fact.site,
        &fact.attempt,
        hour,
        &fact.project,
        &fact.team,
        &fact.agent,
        &fact.extension,
        &fact.batch,
        &fact.account,
        &codes[0],
        &codes[1],
        &codes[2],
        &fact.ring_seconds,
        &fact.queue_seconds,
        &fact.talk_seconds,
        &fact.ivr_seconds,
        &fact.started_at,
        combo,
    ]
}

/// Records a finished attempt inside the store's write transaction `tx`. A redelivery of the
/// same fact changes nothing; a changed fact replaces the old one's contribution.
pub fn record_attempt(tx: &Transaction<'_>, fact: &AttemptFact, pending: &mut Pending) -> Result<(), ReportError> {
    let hour = fact.started_at.div_euclid(3600);
    let codes = [fact.direction.code(), hangup_code(fact.hangup), fact.outcome.code()];
    let fresh_combo = fact.values.as_deref().map_or_else(|| "[]".to_owned(), canonical_combo);
    // Insert first: an attempt seen the first time (nearly every one in a sync-up run) has
    // no stored fact or values to read back.
    let inserted = tx
        .prepare_cached(&format!(
            "INSERT INTO report_facts ({FACT_COLUMNS})
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             ON CONFLICT (site_id, attempt_id) DO NOTHING"
        ))?
        .execute(&fact_params(fact, &hour, &codes, &fresh_combo.as_str())[..])?;
    if inserted == 1 {
        return move_contribution(tx, pending, None, Some(contribution(fact, &fresh_combo)));
    }
    let previous = stored(tx, fact.site, fact.attempt)?;
    let combo = match (&fact.values, &previous) {
        (Some(_), _) | (None, None) => fresh_combo,
        (None, Some((_, combo))) => combo.clone(),
    };
    let old = previous.and_then(|(f, c)| f.map(|f| contribution(&f, &c)));
    tx.prepare_cached(
        "UPDATE report_facts SET has_attempt = 1, utc_hour = ?3, project_id = ?4, team = ?5, agent = ?6,
             extension = ?7, batch_id = ?8, account = ?9, direction = ?10, hangup = ?11, outcome = ?12,
             ring_s = ?13, queue_s = ?14, talk_s = ?15, ivr_s = ?16, started_at = ?17, combo = ?18
         WHERE site_id = ?1 AND attempt_id = ?2",
    )?
    .execute(&fact_params(fact, &hour, &codes, &combo.as_str())[..])?;
    let new = Some(contribution(fact, &combo));
    move_contribution(tx, pending, old, new)
}

/// Records the single-choice values of the business record of `(site, attempt)` inside the
/// store's write transaction: the latest call wins (the store calls it only for a record
/// newer than the one it keeps). Before its attempt arrives the values wait in the fact's row;
/// after, the attempt's contribution moves to its new values.
pub fn record_business(
    tx: &Transaction<'_>,
    site: i64,
    attempt: i64,
    values: &[(String, String)],
    pending: &mut Pending,
) -> Result<(), ReportError> {
    let combo = canonical_combo(values);
    let kept: Option<(bool, String)> = tx
        .prepare_cached("SELECT has_attempt, combo FROM report_facts WHERE site_id = ?1 AND attempt_id = ?2")?
        .query_row(params![site, attempt], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let previous = match kept {
        // The same values again (a re-save of other fields): nothing moves.
        Some((_, old_combo)) if old_combo == combo => return Ok(()),
        Some((true, _)) => stored(tx, site, attempt)?,
        Some((false, old_combo)) => Some((None, old_combo)),
        None => None,
    };
    match &previous {
        Some(_) => {
            tx.prepare_cached("UPDATE report_facts SET combo = ?3 WHERE site_id = ?1 AND attempt_id = ?2")?
                .execute(params![site, attempt, combo])?;
        }
        None => {
            tx.prepare_cached("INSERT INTO report_facts (site_id, attempt_id, combo) VALUES (?1, ?2, ?3)")?
                .execute(params![site, attempt, combo])?;
        }
    }
    if let Some((Some(fact), old_combo)) = previous {
        let old = Some(contribution(&fact, &old_combo));
        let new = Some(contribution(&fact, &combo));
        move_contribution(tx, pending, old, new)?;
    }
    Ok(())
}

/// The current version (bumped once by each transaction that changed a cell).
pub fn version(conn: &rusqlite::Connection) -> Result<i64, ReportError> {
    Ok(conn.query_row("SELECT value FROM report_meta WHERE key = 'version'", [], |r| r.get(0))?)
}

/// Every cell, for loading the engine: `(utc_hour, key, measures)`.
pub fn for_each_cell(
    conn: &rusqlite::Connection,
    mut f: impl FnMut(i64, CellKey, Measures),
) -> Result<(), ReportError> {
    let mut stmt = conn.prepare(
        "SELECT utc_hour, cell, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15 FROM report_cells",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mut m = [0_i64; N_MEASURES];
        for (i, slot) in m.iter_mut().enumerate() {
            *slot = row.get(i + 2)?;
        }
        let key = CellKey::decode(&row.get::<_, String>(1)?)?;
        f(row.get(0)?, key, m);
    }
    Ok(())
}

/// Every recorded attempt with its record's values (the oracle's input).
pub fn all_facts(conn: &rusqlite::Connection) -> Result<Vec<(AttemptFact, String)>, ReportError> {
    let mut stmt = conn.prepare(
        "SELECT site_id, attempt_id, project_id, team, agent, extension, batch_id, account, direction, hangup, outcome,
                ring_s, queue_s, talk_s, ivr_s, started_at, combo
         FROM report_facts WHERE has_attempt = 1",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            AttemptFact {
                site: r.get(0)?,
                attempt: r.get(1)?,
                project: r.get(2)?,
                team: r.get(3)?,
                agent: r.get(4)?,
                extension: r.get(5)?,
                batch: r.get(6)?,
                account: r.get(7)?,
                direction: Direction::from_code(r.get(8)?),
                hangup: hangup_from_code(r.get(9)?),
                outcome: Outcome::from_code(r.get(10)?),
                ring_seconds: r.get(11)?,
                queue_seconds: r.get(12)?,
                talk_seconds: r.get(13)?,
                ivr_seconds: r.get(14)?,
                started_at: r.get(15)?,
                values: None,
            },
            r.get::<_, String>(16)?,
        ))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
