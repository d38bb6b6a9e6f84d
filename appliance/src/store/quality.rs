//! A call's audio quality (通话质量) as the lines measured it: per leg (the customer's RTP
//! from the trunk, the agent's from the phone) the packet loss in per cent, the RFC 3550
//! jitter in milliseconds and the E-model MOS (`hardware::quality`). Kept beside the
//! attempt, one row per call that had media; a leg that sent nothing has no figures.

use hardware::quality::{CallQuality, LegQuality};
use rusqlite::{OptionalExtension, params};

use super::{DbError, Store};

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
        self.lock().execute(
            "INSERT OR REPLACE INTO call_quality
               (attempt_id, customer_loss, customer_jitter_ms, customer_mos, agent_loss, agent_jitter_ms, agent_mos)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![attempt_id, c_loss, c_jitter, c_mos, a_loss, a_jitter, a_mos],
        )?;
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
