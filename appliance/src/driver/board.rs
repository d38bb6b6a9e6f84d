//! The driver's part of HQ's monitoring wall: every signed-in agent's state as the wall
//! shows it (the desk's state, overlaid by a call ringing their phone, a call in progress
//! or after-call work), the calls, the lines in use and the trunks' alarms. Told to the
//! store after every message, line event and tick; the store keeps it only if it changed.

use sync_protocol::{LiveAgentState, SiteAlarm};

use super::{AgentSlot, Driver};
use crate::desk::AgentState;
use crate::store::{BoardAgent, LiveBoard};

impl Driver {
    pub(super) fn publish_board(&self) {
        let now = super::unix_now();
        let mut board = LiveBoard::default();
        for call in self.calls.values() {
            board.lines_in_use += 1;
            if !call.answered {
                board.calls_ringing += 1;
            } else if call.bridged {
                board.calls_talking += 1;
            } else {
                board.calls_queued += 1;
                let waited = call.answered_at.map_or(0, |at| (now - at).max(0));
                board.longest_queued_s = board.longest_queued_s.max(u32::try_from(waited).unwrap_or(u32::MAX));
            }
        }
        board.lines_available = self.trunks.iter().map(|(_, channels)| *channels).sum();
        for trunk in self.telephony.trunk_status() {
            if !trunk.alive {
                board.alarms.push(SiteAlarm::TrunkDown { trunk: trunk.name });
            } else if trunk.registered == Some(false) {
                board.alarms.push(SiteAlarm::TrunkUnregistered { trunk: trunk.name });
            }
        }
        board.agents = self
            .agents
            .values()
            .filter_map(|slot| {
                let state = self.wall_state(slot)?;
                Some(BoardAgent { username: slot.username.clone(), extension: slot.extension.clone(), state })
            })
            .collect();
        self.store.set_live_board(board);
    }

    /// The agent's state on the wall; `None` when signed out.
    fn wall_state(&self, slot: &AgentSlot) -> Option<LiveAgentState> {
        if let Some(call) = slot.call.and_then(|id| self.calls.get(&id)) {
            // Talking once both the customer and the agent's phone are on the call; before
            // that the agent's phone rings (or, on their own call, the customer's does).
            return Some(if call.answered && call.bridged { LiveAgentState::Talking } else { LiveAgentState::Ringing });
        }
        if slot.wrap_up {
            return Some(LiveAgentState::WrapUp);
        }
        match slot.state {
            AgentState::SignedOut => None,
            AgentState::Available => Some(LiveAgentState::Available),
            AgentState::OneClickOnly => Some(LiveAgentState::OneClickOnly),
            AgentState::Break => Some(LiveAgentState::Break),
            AgentState::Away => Some(LiveAgentState::Away),
        }
    }
}
