//! Inbound calls (呼入): a customer calling one of the site's numbers. The caller is looked up
//! among the site's customers (the newest verified batch holding the number) and the agent
//! who last talked to them; the call is written as an `inbound` attempt of that customer, or
//! of no customer (batch 0) when the number is unknown. Neither the black list nor the
//! calling windows apply: they keep the site from calling, and a customer may always call.
//! The attempt leaves the customer's row as it was (the task may still dial it) and goes up
//! as [`AttemptKind::Inbound`](sync_protocol::AttemptKind::Inbound) through the same
//! [`Store::finish_attempt`] as every call.

use rusqlite::{OptionalExtension, params};

use super::callbacks::insert_callback;
use super::{DbError, Store, now_unix};

/// The inbound call as written, and where it may be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundClaim {
    pub attempt_id: u64,
    /// The customer's batch; 0 for a caller who is none of the site's customers.
    pub batch_id: u64,
    /// The customer's project (its task), if the caller is a customer.
    pub project_id: Option<u64>,
    /// The agent (username) who last talked to this number, if any.
    pub last_agent: Option<String>,
}

impl Store {
    /// Writes the `inbound` attempt of a call from `caller` (digits) as "dialing".
    pub fn claim_inbound(&self, caller: &str, now: i64) -> Result<InboundClaim, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        type Row = (u64, u32, u32, u64, Option<u64>);
        let customer: Option<Row> = if caller.is_empty() {
            None
        } else {
            tx.query_row(
                "SELECT r.batch_id, r.chunk_idx, r.row_idx, r.row_id, b.project_id
                 FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
                 WHERE r.phone = ?1 AND b.verified = 1 AND b.project_id IS NOT NULL
                 ORDER BY b.imported_at DESC, b.batch_id DESC LIMIT 1",
                [caller],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .optional()?
        };
        let last_agent: Option<String> = match customer {
            None => None,
            Some(_) => tx
                .query_row(
                    "SELECT agent FROM attempts WHERE phone = ?1 AND agent IS NOT NULL AND agent <> ''
                     ORDER BY started_at DESC, attempt_id DESC LIMIT 1",
                    [caller],
                    |row| row.get(0),
                )
                .optional()?,
        };
        let (batch_id, chunk_idx, row_idx, row_id, project_id) = customer.unwrap_or((0, 0, 0, 0, None));
        tx.execute(
            "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, 'dialing', ?6, 'inbound')",
            params![batch_id, chunk_idx, row_idx, row_id, caller, now],
        )?;
        let attempt_id = tx.last_insert_rowid() as u64;
        tx.commit()?;
        Ok(InboundClaim { attempt_id, batch_id, project_id, last_agent })
    }

    /// A known customer's inbound call nobody took: a callback (新建未执行, due now) of that
    /// customer for anyone in its task, on the list of the agent who last talked to them (the
    /// site admin's list when nobody did). It is not armed: an agent or the admin decides
    /// when to call back. `None` for an unknown caller.
    pub fn inbound_callback(&self, attempt_id: u64, agent: Option<&str>, title: &str) -> Result<Option<u64>, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let customer: Option<(u64, u32, u32, u64, String)> = tx
            .query_row(
                "SELECT batch_id, chunk_idx, row_idx, row_id, phone FROM attempts WHERE attempt_id = ?1 AND batch_id <> 0",
                [attempt_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .optional()?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone)) = customer else { return Ok(None) };
        let now = now_unix();
        let agent = agent.unwrap_or_default();
        let callback_id = insert_callback(&tx, (batch_id, chunk_idx, row_idx, row_id, &phone), agent, "system", title, now, "")?;
        tx.execute("UPDATE callbacks SET scope = 'task' WHERE callback_id = ?1", [callback_id])?;
        tx.commit()?;
        self.notify.notify_one();
        Ok(Some(callback_id))
    }

    /// The message a caller left in the queue hears before the box hangs up: the newest
    /// prompt of HQ's voice library whose bytes are here.
    pub fn inbound_message_file(&self) -> Result<Option<std::path::PathBuf>, DbError> {
        let shas: Vec<String> = {
            let conn = self.lock();
            let mut statement = conn.prepare(
                "SELECT sha256 FROM voice_files WHERE NOT deleted AND kind = 'prompt' ORDER BY version DESC, voice_id DESC",
            )?;
            statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?
        };
        Ok(shas.into_iter().find_map(|hex| self.held_voice(&hex)))
    }
}
