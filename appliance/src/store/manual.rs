//! Agents' own calls: "my projects", one-click dialing (一键外呼), calling a callback and
//! calling back now. Each takes its number in one transaction with the same HQ gates and
//! busy check as the predictive dialer.

use rusqlite::{OptionalExtension, Transaction, params};
use sync_protocol::mask_middle_digits;

use super::dialing::attempt_customer;
use super::accounts::agent_settings_in;
use super::callbacks::push_callback_event;
use super::tasks::{task_agents_in, task_settings_in};
use super::{ClaimedNumber, DbError, SiteDialMode, Store, load_project, now_unix};

/// A project as an agent's "my projects" lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MyProject {
    pub project_id: u64,
    pub name: String,
    pub dial_mode: SiteDialMode,
    /// "running" when one of its tasks that this agent works is started, else "paused".
    pub status: &'static str,
    /// When its first batch was imported at HQ (unix seconds).
    pub created_at: i64,
    /// Undialed numbers owned by this agent.
    pub my_numbers: u64,
}

/// A number taken for an agent's own call (one-click, callback or call back now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualClaim {
    pub claimed: ClaimedNumber,
    /// The line to dial on (empty: any).
    pub caller: String,
    pub ring_seconds: u32,
    pub auto_answer: bool,
    /// What the agent's desk may show while it rings (always first three, last four).
    pub ringing_phone: String,
}

/// Why an agent's own call could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum ManualDialError {
    /// Nothing left to dial in that project for this agent.
    #[error("no number is left to dial in project {0} for you")]
    NothingLeft(u64),
    /// The project has no started one-click task this agent works.
    #[error("project {0} has no started one-click task you work; ask the site admin to start it")]
    NotOneClick(u64),
    /// The callback or call is not this agent's, or not in a state to dial.
    #[error("{0}")]
    NotAllowed(String),
    /// The agent already has a call, or is in a state that takes none.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// The projects of tasks this agent works, with their one-click state and owned numbers.
    pub fn my_projects(&self, user_id: u64, username: &str) -> Result<Vec<MyProject>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT b.batch_id, b.project_id, b.running, b.verified,
                    COALESCE(b.control_priority, b.manifest_priority, 2), b.imported_at
             FROM batches b WHERE b.project_id IS NOT NULL ORDER BY b.imported_at, b.batch_id",
        )?;
        type BatchRow = (u64, u64, bool, bool, u8, Option<i64>);
        let batches: Vec<BatchRow> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)))?
            .collect::<Result<_, _>>()?;
        let mut projects: Vec<MyProject> = Vec::new();
        for (batch_id, project_id, running, verified, priority, imported_at) in batches {
            let agents = task_agents_in(&conn, batch_id)?;
            if !agents.is_empty() && !agents.contains(&user_id) {
                continue;
            }
            let Some(settings) = task_settings_in(&conn, batch_id)? else { continue };
            let def = load_project(&conn, project_id)?;
            let mine: u64 = conn.query_row(
                "SELECT COUNT(*) FROM batch_rows WHERE batch_id = ?1 AND owner = ?2 AND status = 'new'",
                params![batch_id, username],
                |row| row.get(0),
            )?;
            let live = running && verified && priority >= 2;
            match projects.iter_mut().find(|project| project.project_id == project_id) {
                Some(project) => {
                    project.my_numbers += mine;
                    if live {
                        project.status = "running";
                        project.dial_mode = settings.extras.dial_mode;
                    }
                }
                None => projects.push(MyProject {
                    project_id,
                    name: def.map(|def| def.name).unwrap_or_else(|| format!("project {project_id}")),
                    dial_mode: settings.extras.dial_mode,
                    status: if live { "running" } else { "paused" },
                    created_at: imported_at.unwrap_or_default(),
                    my_numbers: mine,
                }),
            }
        }
        Ok(projects)
    }

    /// Takes the next number of a one-click project for an agent: numbers the agent owns
    /// first, then by batch priority, then import order (A5); numbers owned by another
    /// agent are never taken. The attempt is written as "dialing", kind one_click.
    pub fn claim_one_click(&self, project_id: u64, user_id: u64, username: &str) -> Result<ManualClaim, ManualDialError> {
        self.claim_one_click_at(project_id, user_id, username, now_unix())
    }

    /// [`Store::claim_one_click`] as if the clock read `now` (unix seconds): HQ's calling
    /// windows are judged at that time.
    pub fn claim_one_click_at(&self, project_id: u64, user_id: u64, username: &str, now: i64) -> Result<ManualClaim, ManualDialError> {
        let minute = super::hq::china_minute(now);
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let batches: Vec<u64> = {
            let mut statement = tx
                .prepare(
                    "SELECT batch_id FROM batches
                     WHERE project_id = ?1 AND running = 1 AND verified = 1 AND dial_mode = 'one_click'
                       AND COALESCE(control_priority, manifest_priority, 2) >= 2",
                )
                .map_err(DbError::from)?;
            statement
                .query_map([project_id], |row| row.get(0))
                .map_err(DbError::from)?
                .collect::<Result<_, _>>()
                .map_err(DbError::from)?
        };
        let mut mine = Vec::new();
        for batch_id in batches {
            let agents = task_agents_in(&tx, batch_id)?;
            if agents.is_empty() || agents.contains(&user_id) {
                mine.push(batch_id);
            }
        }
        if mine.is_empty() {
            return Err(ManualDialError::NotOneClick(project_id));
        }
        let list = mine.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",");
        // The ids are integers from the store, so building the IN list is safe.
        let sql = format!(
            "SELECT r.batch_id, r.chunk_idx, r.row_idx, r.row_id, r.phone
             FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
             WHERE r.batch_id IN ({list}) AND r.status = 'new' AND (r.owner IS NULL OR r.owner = ?1)
               AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.phone = r.phone AND a.state = 'dialing')
               {gates}
             ORDER BY (r.owner IS NOT NULL) DESC,
                      COALESCE(b.control_priority, b.manifest_priority) DESC,
                      b.imported_at, b.batch_id, r.chunk_idx, r.row_idx
             LIMIT 1",
            gates = super::hq::HQ_GATES
        );
        let next: Option<(u64, u32, u32, u64, String)> = tx
            .query_row(&sql, params![username, minute], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone)) = next else {
            if let Some(reason) = super::hq::hold_reason(&tx, project_id, minute)? {
                return Err(ManualDialError::NotAllowed(reason));
            }
            return Err(ManualDialError::NothingLeft(project_id));
        };
        tx.execute(
            "UPDATE batch_rows SET status = 'dialing' WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
            params![batch_id, chunk_idx, row_idx],
        )
        .map_err(DbError::from)?;
        let claim = insert_manual_attempt(&tx, user_id, username, batch_id, chunk_idx, row_idx, row_id, &phone, "one_click", None)?;
        tx.commit().map_err(DbError::from)?;
        Ok(claim)
    }

    /// Writes the attempt of a call back now (from the popup): the same customer as
    /// `attempt_id`, which must have been the agent's. A done callback records it.
    pub fn claim_call_back_now(&self, attempt_id: u64, user_id: u64, username: &str) -> Result<ManualClaim, ManualDialError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found = attempt_customer(&tx, attempt_id)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone, agent)) = found else {
            return Err(ManualDialError::NotAllowed(format!("call {attempt_id} does not exist")));
        };
        if agent.as_deref() != Some(username) {
            return Err(ManualDialError::NotAllowed(format!("call {attempt_id} was not yours; you can only call back your own customers")));
        }
        busy_check(&tx, &phone)?;
        let now = now_unix();
        tx.execute(
            "INSERT INTO callbacks (batch_id, chunk_idx, row_idx, row_id, phone, agent, created_by, title, note,
                                    due_at, state, created_at, done_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, '当下回访', '', ?7, 'done', ?7, ?7)",
            params![batch_id, chunk_idx, row_idx, row_id, phone, username, now],
        )
        .map_err(DbError::from)?;
        let callback_id = tx.last_insert_rowid() as u64;
        push_callback_event(&tx, callback_id)?;
        let claim = insert_manual_attempt(&tx, user_id, username, batch_id, chunk_idx, row_idx, row_id, &phone, "callback", Some(callback_id))?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(claim)
    }

    /// Writes the attempt of a scheduled callback being executed and marks the callback
    /// done (actual time now), with its outbox entry, in one transaction.
    pub fn claim_callback(&self, callback_id: u64, user_id: u64, username: &str) -> Result<ManualClaim, ManualDialError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        // batch, chunk, row, row id, phone, agent, state, scope.
        type Found = (u64, u32, u32, u64, String, String, String, String);
        let found: Option<Found> = tx
            .query_row(
                "SELECT batch_id, chunk_idx, row_idx, row_id, phone, agent, state, scope FROM callbacks WHERE callback_id = ?1",
                [callback_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone, agent, state, scope)) = found else {
            return Err(ManualDialError::NotAllowed(format!("callback {callback_id} does not exist")));
        };
        // A task callback (scheduled for anyone, or handed over from an absent agent) may be
        // taken by any agent of its task; whoever takes it becomes its agent.
        let takers = task_agents_in(&tx, batch_id)?;
        let task_may = scope == "task" && (takers.is_empty() || takers.contains(&user_id));
        if agent != username && !task_may {
            return Err(ManualDialError::NotAllowed(format!("callback {callback_id} is assigned to another agent")));
        }
        if state == "done" || state == "cancelled" {
            return Err(ManualDialError::NotAllowed(format!("callback {callback_id} is already {state}")));
        }
        busy_check(&tx, &phone)?;
        tx.execute(
            "UPDATE callbacks SET state = 'done', done_at = ?2, agent = ?3 WHERE callback_id = ?1",
            params![callback_id, now_unix(), username],
        )
        .map_err(DbError::from)?;
        push_callback_event(&tx, callback_id)?;
        let claim = insert_manual_attempt(&tx, user_id, username, batch_id, chunk_idx, row_idx, row_id, &phone, "callback", Some(callback_id))?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(claim)
    }
}

fn busy_check(tx: &Transaction<'_>, phone: &str) -> Result<(), ManualDialError> {
    // HQ's black list holds for an agent's own calls too, even while the link is down.
    let listed: Option<bool> = tx
        .query_row("SELECT listed FROM blacklist WHERE phone = ?1", [phone.trim()], |row| row.get(0))
        .optional()
        .map_err(DbError::from)?;
    if listed == Some(true) {
        return Err(ManualDialError::NotAllowed("this number is on HQ's black list and cannot be dialed".into()));
    }
    let dialing: Option<u64> = tx
        .query_row("SELECT attempt_id FROM attempts WHERE phone = ?1 AND state = 'dialing'", [phone], |row| row.get(0))
        .optional()
        .map_err(DbError::from)?;
    if dialing.is_some() {
        return Err(ManualDialError::Busy("this customer is on another call right now; try again in a moment".into()));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_manual_attempt(
    tx: &Transaction<'_>,
    user_id: u64,
    username: &str,
    batch_id: u64,
    chunk_idx: u32,
    row_idx: u32,
    row_id: u64,
    phone: &str,
    kind: &str,
    callback_id: Option<u64>,
) -> Result<ManualClaim, DbError> {
    // The agent is written at once: an agent's own call can only ever go to them.
    tx.execute(
        "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at, agent, kind, callback_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 'dialing', ?6, ?7, ?8, ?9)",
        params![batch_id, chunk_idx, row_idx, row_id, phone, now_unix(), username, kind, callback_id],
    )?;
    let attempt_id = tx.last_insert_rowid() as u64;
    let (ring_seconds, answer_mode, task_caller): (u32, String, String) = tx.query_row(
        "SELECT ring_seconds, answer_mode, caller FROM batches WHERE batch_id = ?1",
        [batch_id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let settings = agent_settings_in(tx, user_id)?;
    Ok(ManualClaim {
        claimed: ClaimedNumber { attempt_id, batch_id, row_id, phone: phone.to_string(), owner: None },
        caller: if settings.caller.is_empty() { task_caller } else { settings.caller },
        ring_seconds,
        auto_answer: answer_mode != "ring",
        ringing_phone: mask_middle_digits(phone),
    })
}
