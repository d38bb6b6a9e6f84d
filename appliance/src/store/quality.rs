//! A call's audio quality (通话质量) as the lines measured it: per leg (the customer's RTP
//! from the trunk, the agent's from the phone) the packet loss in per cent, the RFC 3550
//! jitter in milliseconds and the E-model MOS (`hardware::quality`). Kept beside the
//! attempt, one row per call that had media; a leg that sent nothing has no figures. The
//! same figures go up to HQ in the same transaction ([`UpEvent::CallQuality`], protocol 4;
//! the link holds it back from an older hub).

use hardware::quality::{CallQuality, LegQuality};
use rusqlite::{OptionalExtension, params};
use sync_protocol::{CallQualityReport, LegQualityFigures, UpEvent};

use super::{DbError, Store, push_outbox};

/// One leg's figures as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegFigures {
    pub loss_percent: f64,
    pub jitter_ms: f64,
    pub mos: f64,
}

/// Both legs of a call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StoredQuality {
    pub customer: Option<LegFigures>,
    pub agent: Option<LegFigures>,
}

fn figures(leg: Option<LegQuality>) -> (Option<f64>, Option<f64>, Option<f64>) {
    match leg {
        Some(leg) => (Some(leg.loss_percent), Some(leg.jitter_ms), Some(leg.mos)),
        None => (None, None, None),
    }
}

fn wire(leg: Option<LegQuality>) -> Option<LegQualityFigures> {
    leg.map(|leg| LegQualityFigures {
        loss_percent: leg.loss_percent as f32,
        jitter_ms: leg.jitter_ms as f32,
        mos: leg.mos as f32,
    })
}

fn leg(loss: Option<f64>, jitter: Option<f64>, mos: Option<f64>) -> Option<LegFigures> {
    Some(LegFigures { loss_percent: loss?, jitter_ms: jitter?, mos: mos? })
}

impl Store {
    /// Keeps the call's quality with its attempt (a call with no media on either leg is
    /// not written).
    pub fn record_call_quality(&self, attempt_id: u64, quality: &CallQuality) -> Result<(), DbError> {
        if quality.customer.is_none() && quality.agent.is_none() {
            return Ok(());
        }
        let (c_loss, c_jitter, c_mos) = figures(quality.customer);
        let (a_loss, a_jitter, a_mos) = figures(quality.agent);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO call_quality
               (attempt_id, customer_loss, customer_jitter_ms, customer_mos, agent_loss, agent_jitter_ms, agent_mos)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![attempt_id, c_loss, c_jitter, c_mos, a_loss, a_jitter, a_mos],
        )?;
        let report = CallQualityReport { attempt_id, customer: wire(quality.customer), agent: wire(quality.agent) };
        push_outbox(&tx, &UpEvent::CallQuality(report))?;
        tx.commit()?;
        drop(conn);
        self.notify.notify_one();
        Ok(())
    }

    /// The call's quality, if the lines measured any.
    pub fn call_quality(&self, attempt_id: u64) -> Result<Option<StoredQuality>, DbError> {
        type Row = (Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<f64>);
        let row: Option<Row> = self
            .lock()
            .query_row(
                "SELECT customer_loss, customer_jitter_ms, customer_mos, agent_loss, agent_jitter_ms, agent_mos
                 FROM call_quality WHERE attempt_id = ?1",
                [attempt_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)),
            )
            .optional()?;
        Ok(row.map(|(c_loss, c_jitter, c_mos, a_loss, a_jitter, a_mos)| StoredQuality {
            customer: leg(c_loss, c_jitter, c_mos),
            agent: leg(a_loss, a_jitter, a_mos),
        }))
    }
}

/// A recent call whose audio was poor on either leg, as the site monitor lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoorCall {
    pub attempt_id: u64,
    /// Masked: 138****0001.
    pub phone: String,
    pub agent: Option<String>,
    /// `(loss %, MOS)` of what the box received from the customer.
    pub customer: Option<(f64, f64)>,
    /// `(loss %, MOS)` of what the box received from the agent's phone.
    pub agent_leg: Option<(f64, f64)>,
}

/// A leg is poor under this MOS (G.107: "many users dissatisfied" starts near 3.6).
pub const POOR_MOS: f64 = 3.6;
/// Or above this loss, in per cent.
pub const POOR_LOSS_PERCENT: f64 = 3.0;

/// How many of the latest attempts the monitor looks through: a walk of the key, whatever
/// the store's age, once a second.
const RECENT_ATTEMPTS: i64 = 2_000;

fn mask(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return phone.to_string();
    }
    let (head, tail) = (&chars[..3], &chars[chars.len() - 4..]);
    format!("{}****{}", head.iter().collect::<String>(), tail.iter().collect::<String>())
}

impl Store {
    /// The latest calls (of the last [`RECENT_ATTEMPTS`]) with a poor leg: MOS under
    /// [`POOR_MOS`] or loss above [`POOR_LOSS_PERCENT`], newest first.
    pub fn poor_quality_calls(&self, limit: u32) -> Result<Vec<PoorCall>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT q.attempt_id, a.phone, a.agent, q.customer_loss, q.customer_mos, q.agent_loss, q.agent_mos
             FROM call_quality q JOIN attempts a ON a.attempt_id = q.attempt_id
             WHERE q.attempt_id > (SELECT COALESCE(MAX(attempt_id), 0) FROM attempts) - ?1
               AND (q.customer_mos < ?2 OR q.customer_loss > ?3 OR q.agent_mos < ?2 OR q.agent_loss > ?3)
             ORDER BY q.attempt_id DESC LIMIT ?4",
        )?;
        let rows = statement.query_map(params![RECENT_ATTEMPTS, POOR_MOS, POOR_LOSS_PERCENT, limit], |row| {
            let pair = |loss: Option<f64>, mos: Option<f64>| Some((loss?, mos?));
            Ok(PoorCall {
                attempt_id: row.get(0)?,
                phone: mask(&row.get::<_, String>(1)?),
                agent: row.get(2)?,
                customer: pair(row.get(3)?, row.get(4)?),
                agent_leg: pair(row.get(5)?, row.get(6)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
