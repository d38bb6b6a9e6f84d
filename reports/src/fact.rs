//! One call attempt as reports see it ([`AttemptFact`]) and what it adds to each statistic
//! ([`Measures`]).

use serde::{Deserialize, Serialize};

use crate::model::Statistic;

/// Inbound or outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn code(self) -> u8 {
        match self {
            Direction::Outbound => 0,
            Direction::Inbound => 1,
        }
    }

    pub fn from_code(code: u8) -> Direction {
        if code == 1 { Direction::Inbound } else { Direction::Outbound }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Who hung up (挂断位置).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    Customer,
    Agent,
    System,
}

/// `hangup side` as a number: 0 none, 1 customer, 2 agent, 3 system.
pub fn hangup_code(side: Option<HangupSide>) -> u8 {
    match side {
        None => 0,
        Some(HangupSide::Customer) => 1,
        Some(HangupSide::Agent) => 2,
        Some(HangupSide::System) => 3,
    }
}

pub fn hangup_from_code(code: u8) -> Option<HangupSide> {
    match code {
        1 => Some(HangupSide::Customer),
        2 => Some(HangupSide::Agent),
        3 => Some(HangupSide::System),
        _ => None,
    }
}

/// The name a condition or a row key uses: `customer`, `agent`, `system`, `none`.
pub fn hangup_name(code: u8) -> &'static str {
    ["none", "customer", "agent", "system"].get(usize::from(code)).copied().unwrap_or("none")
}

/// How an attempt ended, as far as the statistics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The customer never came on the line (busy, no answer, refused, failed).
    NotAnswered,
    /// An agent's extension took the call.
    Connected,
    /// Answered, then the customer left while queued for an agent.
    QueueAbandoned,
    /// The customer left in the IVR.
    IvrAbandoned,
    /// Offered to an agent, who rejected it.
    ExtensionRejected,
    /// Offered to an agent, who let it ring out.
    ExtensionMissed,
    /// Answered and ended without an agent for another reason (an IVR campaign's message).
    AnsweredNoAgent,
}

impl Outcome {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Outcome {
        match code {
            1 => Outcome::Connected,
            2 => Outcome::QueueAbandoned,
            3 => Outcome::IvrAbandoned,
            4 => Outcome::ExtensionRejected,
            5 => Outcome::ExtensionMissed,
            6 => Outcome::AnsweredNoAgent,
            _ => Outcome::NotAnswered,
        }
    }
}

/// One call attempt with everything a report can group, filter or count by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFact {
    pub project: i64,
    pub site: i64,
    /// The site's own id of the attempt: `(site, attempt)` is the fact's identity.
    pub attempt: i64,
    /// The agent's team at the site; empty when none.
    pub team: String,
    /// The agent account; empty when no agent was involved.
    pub agent: String,
    pub extension: String,
    pub batch: i64,
    /// The HQ account that dispatched the batch (数据来源); empty at a site that does not know.
    pub account: String,
    pub direction: Direction,
    pub hangup: Option<HangupSide>,
    pub outcome: Outcome,
    pub ring_seconds: u32,
    pub queue_seconds: u32,
    pub talk_seconds: u32,
    pub ivr_seconds: u32,
    /// When the call started (unix seconds): the bucket it counts in, whenever it arrives.
    pub started_at: i64,
    /// The business record's single-choice values by field key, when the record comes with
    /// the attempt; `None` keeps what [`crate::record_business`] stored.
    pub values: Option<Vec<(String, String)>>,
}

/// How many statistics a cell keeps.
pub const N_MEASURES: usize = 16;

/// The base statistics in the order cells keep them.
pub const MEASURES: [Statistic; N_MEASURES] = [
    Statistic::Attempts,
    Statistic::Dials,
    Statistic::DialConnected,
    Statistic::CustomerConnected,
    Statistic::ExtensionConnected,
    Statistic::ExtensionRejected,
    Statistic::ExtensionMissed,
    Statistic::QueueAbandon,
    Statistic::IvrAbandon,
    Statistic::Inbound,
    Statistic::InboundConnected,
    Statistic::TalkSeconds,
    Statistic::IvrSeconds,
    Statistic::RingSeconds,
    Statistic::QueueSeconds,
    Statistic::AgentsReached,
];

/// A cell's statistics (or one attempt's contribution).
pub type Measures = [i64; N_MEASURES];

/// The place of a base statistic in [`Measures`]; `None` for a business-field count.
pub fn measure_index(statistic: &Statistic) -> Option<usize> {
    MEASURES.iter().position(|m| m == statistic)
}

impl AttemptFact {
    /// What this attempt adds to each statistic.
    pub fn measures(&self) -> Measures {
        let out = self.direction == Direction::Outbound;
        let answered = self.outcome != Outcome::NotAnswered;
        let connected = self.outcome == Outcome::Connected;
        let reached =
            matches!(self.outcome, Outcome::Connected | Outcome::ExtensionRejected | Outcome::ExtensionMissed);
        let b = i64::from;
        [
            1,
            b(out),
            b(out && answered),
            b(answered),
            b(connected),
            b(self.outcome == Outcome::ExtensionRejected),
            b(self.outcome == Outcome::ExtensionMissed),
            b(self.outcome == Outcome::QueueAbandoned),
            b(self.outcome == Outcome::IvrAbandoned),
            b(!out),
            b(!out && connected),
            i64::from(self.talk_seconds),
            i64::from(self.ivr_seconds),
            i64::from(self.ring_seconds),
            i64::from(self.queue_seconds),
            b(reached),
        ]
    }
}
