//! Live agent desk state shared by the web and the dialer driver: each agent's work state
//! (可回接, 不可回接, ...) and the popup streams of the agents' open browsers.
//!
//! - The web sets states ([`Desk::set_state`]) and opens popup streams ([`Desk::subscribe`]).
//! - The dialer driver pushes [`DeskEvent`]s to an agent: the popup when a call is put
//!   through (or while it rings, for agents who pop on ring), the ringing number of their own
//!   calls, a callback coming due, and the end of a call.
//!
//! A popup pushed while none of the agent's desk pages is connected (the agent is moving from
//! one page to another) is kept and sent first to the next page that connects.
//!
//! States live in memory: after a restart every agent is signed out and signs in again,
//! which is what a site expects of a rebooted box.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::store::Popup;

/// An agent's work state (工号状态), as the manual names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// 签出: not working.
    SignedOut,
    /// 可回接: receives predictive calls.
    Available,
    /// 不可回接: signed in, works one-click only; no predictive calls.
    OneClickOnly,
    /// 小休.
    Break,
    /// 离开.
    Away,
}

impl AgentState {
    /// Every state, in the order the desk shows them.
    pub const ALL: [AgentState; 5] = [
        AgentState::Available,
        AgentState::OneClickOnly,
        AgentState::Break,
        AgentState::Away,
        AgentState::SignedOut,
    ];

    /// The stable name used in JSON and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::SignedOut => "signed_out",
            AgentState::Available => "available",
            AgentState::OneClickOnly => "one_click_only",
            AgentState::Break => "break",
            AgentState::Away => "away",
        }
    }

    /// Parses the stable name.
    pub fn parse(name: &str) -> Option<AgentState> {
        AgentState::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

/// One agent as the desk knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLive {
    pub agent_id: u64,
    pub username: String,
    pub extension: String,
    pub state: AgentState,
}

/// What an agent's open desk is told, as a server-sent event (`name()` is the event name,
/// `data()` its JSON). Numbers in these events are already masked as the agent may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskEvent {
    /// The popup: customer fields as permitted, script, business form.
    Popup(Popup),
    /// The agent's own call is ringing the customer; the number shows only its first three
    /// and last four digits.
    Ringing { attempt_id: u64, phone: String },
    /// A scheduled callback is due and the system is calling, or waits for the agent to be
    /// free (`dialing` false).
    CallbackDue { callback_id: u64, title: String, phone: String, dialing: bool },
    /// A call of the agent's ended (the desk clears its "calling" line).
    CallEnded { attempt_id: u64, outcome: String },
    /// The agent's state was changed by the system (a missed call sets 离开).
    State { state: AgentState },
    /// Customer and agent are both on the line: the desk's call timer starts talking time.
    Talking { attempt_id: u64 },
}

impl DeskEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            DeskEvent::Popup(_) => "popup",
            DeskEvent::Ringing { .. } => "ringing",
            DeskEvent::CallbackDue { .. } => "callback",
            DeskEvent::CallEnded { .. } => "ended",
            DeskEvent::State { .. } => "state",
            DeskEvent::Talking { .. } => "talking",
        }
    }

    /// The SSE event data (JSON).
    pub fn data(&self) -> String {
        let value = match self {
            DeskEvent::Popup(popup) => serde_json::to_value(popup).unwrap_or_default(),
            DeskEvent::Ringing { attempt_id, phone } => serde_json::json!({"attempt_id": attempt_id, "phone": phone}),
            DeskEvent::CallbackDue { callback_id, title, phone, dialing } => {
                serde_json::json!({"callback_id": callback_id, "title": title, "phone": phone, "dialing": dialing})
            }
            DeskEvent::CallEnded { attempt_id, outcome } => serde_json::json!({"attempt_id": attempt_id, "outcome": outcome}),
            DeskEvent::State { state } => serde_json::json!({"state": state.as_str()}),
            DeskEvent::Talking { attempt_id } => serde_json::json!({"attempt_id": attempt_id}),
        };
        value.to_string()
    }
}

#[derive(Default)]
struct DeskInner {
    agents: HashMap<u64, AgentLive>,
    streams: HashMap<u64, Vec<mpsc::UnboundedSender<DeskEvent>>>,
    /// Popups pushed while none of the agent's pages was connected (between two desk pages):
    /// the next page to connect gets them first. The store's backlog covers the same calls
    /// once their bridge is written, which may be a moment later.
    missed: HashMap<u64, Vec<DeskEvent>>,
}

/// At most this many missed popups are kept per agent (an agent has one call at a time).
const MISSED_KEPT: usize = 8;

/// See the module doc.
#[derive(Default)]
pub struct Desk {
    inner: Mutex<DeskInner>,
}

impl Desk {
    fn lock(&self) -> std::sync::MutexGuard<'_, DeskInner> {
        // The maps stay consistent across a panic (each update is one insert), so a poisoned
        // lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records an agent's new state; returns the previous one.
    pub fn set_state(&self, agent: AgentLive) -> AgentState {
        let mut inner = self.lock();
        let previous = inner
            .agents
            .get(&agent.agent_id)
            .map(|known| known.state)
            .unwrap_or(AgentState::SignedOut);
        inner.agents.insert(agent.agent_id, agent);
        previous
    }

    /// An agent's current state (signed out if never seen).
    pub fn state(&self, agent_id: u64) -> AgentState {
        self.lock().agents.get(&agent_id).map(|agent| agent.state).unwrap_or(AgentState::SignedOut)
    }

    /// One agent, if they ever set a state since start.
    pub fn agent(&self, agent_id: u64) -> Option<AgentLive> {
        self.lock().agents.get(&agent_id).cloned()
    }

    /// Every agent seen since start.
    pub fn agents(&self) -> Vec<AgentLive> {
        let mut agents: Vec<AgentLive> = self.lock().agents.values().cloned().collect();
        agents.sort_by_key(|agent| agent.agent_id);
        agents
    }

    /// How many agents are in each state.
    pub fn counts(&self) -> HashMap<AgentState, usize> {
        let mut counts = HashMap::new();
        for agent in self.lock().agents.values() {
            *counts.entry(agent.state).or_insert(0) += 1;
        }
        counts
    }

    /// Opens an event stream for one of the agent's browser tabs.
    pub fn subscribe(&self, agent_id: u64) -> mpsc::UnboundedReceiver<DeskEvent> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        for event in inner.missed.remove(&agent_id).unwrap_or_default() {
            // The receiver is alive here, so this cannot fail.
            let _ = sender.send(event);
        }
        inner.streams.entry(agent_id).or_default().push(sender);
        receiver
    }

    /// Sends a popup to every open browser of the agent; returns how many received it.
    pub fn push_popup(&self, agent_id: u64, popup: &Popup) -> usize {
        self.push(agent_id, DeskEvent::Popup(popup.clone()))
    }

    /// Sends an event to every open browser of the agent; returns how many received it.
    pub fn push(&self, agent_id: u64, event: DeskEvent) -> usize {
        let mut inner = self.lock();
        // Closed tabs are dropped here rather than tracked on disconnect.
        let reached = match inner.streams.get_mut(&agent_id) {
            Some(streams) => {
                streams.retain(|stream| stream.send(event.clone()).is_ok());
                streams.len()
            }
            None => 0,
        };
        if reached == 0 && matches!(event, DeskEvent::Popup(_)) {
            let missed = inner.missed.entry(agent_id).or_default();
            missed.push(event);
            if missed.len() > MISSED_KEPT {
                missed.remove(0);
            }
        }
        reached
    }

    /// The agent saved the record of `attempt_id`: a missed popup of it is not sent again.
    pub fn saved(&self, agent_id: u64, attempt_id: u64) {
        let mut inner = self.lock();
        if let Some(missed) = inner.missed.get_mut(&agent_id) {
            missed.retain(|event| !matches!(event, DeskEvent::Popup(popup) if popup.attempt_id == attempt_id));
        }
    }

    /// The agent by username, if they set a state since start.
    pub fn agent_by_username(&self, username: &str) -> Option<AgentLive> {
        self.lock().agents.values().find(|agent| agent.username == username).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn popup(attempt_id: u64) -> Popup {
        Popup { attempt_id, phone: "139****0001".into(), fields: Vec::new(), script: String::new(), record_fields: Vec::new(), live: true, inbound: false }
    }

    #[test]
    fn a_popup_pushed_between_two_pages_reaches_the_next_page() {
        let desk = Desk::default();
        let first = desk.subscribe(7);
        drop(first);
        assert_eq!(desk.push_popup(7, &popup(1)), 0, "the agent is between pages");
        assert_eq!(desk.push_popup(7, &popup(2)), 0);
        desk.saved(7, 2);
        let mut next = desk.subscribe(7);
        assert_eq!(next.try_recv().ok(), Some(DeskEvent::Popup(popup(1))));
        assert!(next.try_recv().is_err(), "a saved popup is not sent again");
        assert_eq!(desk.push_popup(7, &popup(3)), 1);
        assert_eq!(next.try_recv().ok(), Some(DeskEvent::Popup(popup(3))));
        assert!(desk.subscribe(7).try_recv().is_err(), "a delivered popup is not kept");
    }
}
