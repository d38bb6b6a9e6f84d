//! A call's audio quality going up (protocol 4): per leg, the packet loss, the RFC 3550
//! jitter and the E-model MOS the box measured. A message of its own rather than fields on
//! the attempt, because postcard is not self-describing: a new field would change the
//! encoding of every attempt, while a new variant is only held back from an older hub.

use serde::{Deserialize, Serialize};

/// One leg's received quality.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LegQualityFigures {
    /// Packets lost, in per cent of those expected.
    pub loss_percent: f32,
    /// Interarrival jitter (RFC 3550), in milliseconds.
    pub jitter_ms: f32,
    /// Estimated MOS (ITU-T G.107), 1.0 to 4.5.
    pub mos: f32,
}

/// Both legs of one call; a leg that carried no audio has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallQualityReport {
    /// The site's id of the attempt the call belongs to.
    pub attempt_id: u64,
    /// What the box received from the customer (the trunk side).
    pub customer: Option<LegQualityFigures>,
    /// What the box received from the agent's phone.
    pub agent: Option<LegQualityFigures>,
}
