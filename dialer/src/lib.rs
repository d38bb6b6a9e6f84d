//! The dialer's core: how many calls to place now, and which answered call goes to which
//! agent. A sans-IO state machine: it is told the time, agent state changes and call
//! events, and answers with [`Action`]s. The appliance's tokio task only carries events in
//! and actions out; the simulator in [`sim`] drives the same core with simulated time.
//!
//! Driving it:
//! - feed events with `agent_*`, `call_*` methods, each taking `now`;
//! - drain [`Dialer::poll_action`] until it returns `None`;
//! - wake again at [`Dialer::poll_timeout`] (queue timeouts, cool-downs, pacing ticks).

use std::time::Duration;

/// Time as seen by the core: elapsed since an arbitrary origin chosen by the driver.
pub type Time = Duration;

/// An agent, by the appliance's id for it.
pub type AgentId = u64;

/// A call the core asked to place, by the id the core gave it in [`Action::Dial`].
pub type CallKey = u64;

/// How the core paces.
#[derive(Debug, Clone, PartialEq)]
pub enum PacingMode {
    /// The manual's mode: `ratio` calls in progress per available agent, capped by
    /// `max_concurrency`.
    FixedRatio { ratio: u32 },
    /// One call per free agent.
    Progressive,
    /// Estimates answer probability, ring and talk time online; keeps agents busy while
    /// holding the abandon rate under `abandon_cap` (0.03 = 3 %).
    Adaptive { abandon_cap: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PacingConfig {
    pub mode: PacingMode,
    /// Most calls in progress (ringing, queued or talking) at once.
    pub max_concurrency: u32,
    /// An agent gets no new call until this long after their last one ended.
    pub cool_down: Duration,
    /// An answered call waiting longer than this is dropped (abandoned).
    pub queue_timeout: Duration,
    /// An answered call not connected to an agent within this is counted abandoned (2 s).
    pub abandon_threshold: Duration,
}

/// What the core wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Place a new call; the driver picks the number and reports back with `call`.
    Dial { call: CallKey },
    /// Offer an answered call to an agent.
    Route { call: CallKey, agent: AgentId },
    /// Give up on a queued call (queue timeout).
    Drop { call: CallKey },
}
