//! Agents as the driver sees them: their work states from the desk, records saved (the end
//! of after-call work), popups pushed to their desks, the counts HQ's wallboard gets, and
//! their phones' extensions.

use dialer::AgentId;
use hardware::ExtensionConfig;

use super::{AgentSlot, Driver};
use crate::desk::{AgentLive, AgentState};

impl Driver {
    pub(super) fn on_agent_state(&mut self, agent: AgentLive) {
        let agent_id = agent.agent_id;
        let slot = self.agents.entry(agent_id).or_insert_with(|| AgentSlot {
            username: agent.username.clone(),
            extension: agent.extension.clone(),
            state: AgentState::SignedOut,
            call: None,
            wrap_up: false,
            unsaved: std::collections::HashSet::new(),
            saved_early: std::collections::HashSet::new(),
        });
        slot.state = agent.state;
        slot.extension = agent.extension;
        if agent.state == AgentState::Available && slot.call.is_none() {
            // Coming back to 可回接 is the agent's word that earlier calls are dealt with.
            slot.wrap_up = false;
        }
        self.sync_agent_tasks(agent_id);
        self.announce(agent_id);
    }

    /// The agent saved a business record: after-call work ends once every call put through
    /// to them has one. A record saved while the call still rings is remembered for its bridge.
    pub(super) fn on_record_saved(&mut self, agent_id: AgentId, attempt_id: u64) {
        let Some(slot) = self.agents.get_mut(&agent_id) else { return };
        if !slot.unsaved.remove(&attempt_id) && slot.call.is_some() {
            slot.saved_early.insert(attempt_id);
        }
        if slot.wrap_up && slot.unsaved.is_empty() {
            slot.wrap_up = false;
        }
        self.announce(agent_id);
    }

    /// Extensions were added or changed: the registrar gets the new list.
    pub(super) fn on_extensions_changed(&mut self) {
        match self.store.extensions() {
            Ok(list) => self.telephony.set_extensions(
                list.into_iter()
                    .map(|ext| ExtensionConfig { extension: ext.extension, password: ext.password })
                    .collect(),
            ),
            Err(error) => tracing::error!(%error, "cannot read extensions"),
        }
    }

    /// Pushes the popup of `attempt_id` to the agent; true if it was built. The popup is
    /// built for the agent before the bridge is written, and `remember` (an agent's own call)
    /// records that it was shown after it went out.
    pub(super) fn send_popup(&mut self, agent_id: AgentId, attempt_id: u64, remember: bool) -> bool {
        let username = self.agents.get(&agent_id).map(|slot| slot.username.clone());
        match self.store.popup_for(attempt_id, username.as_deref()) {
            Ok(Some(popup)) => {
                let tabs = self.desk.push_popup(agent_id, &popup);
                if remember {
                    self.writer.write(move |store| {
                        if let Err(error) = store.mark_popped(attempt_id) {
                            tracing::error!(%error, attempt_id, "cannot record the popup");
                        }
                    });
                }
                tracing::debug!(attempt_id, agent_id, tabs, "popup sent");
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::error!(%error, attempt_id, "cannot build the popup");
                false
            }
        }
    }

    /// Tells the store how many agents are in each state, for the live figures HQ's
    /// wallboard gets (the store keeps no agent state of its own).
    pub(super) fn publish_agent_counts(&self) {
        let mut counts = crate::store::AgentCounts::default();
        for slot in self.agents.values().filter(|slot| slot.state != AgentState::SignedOut) {
            counts.logged_in += 1;
            if slot.call.is_some() {
                counts.talking += 1;
            } else if slot.wrap_up {
                counts.wrap_up += 1;
            } else if matches!(slot.state, AgentState::Break | AgentState::Away) {
                counts.on_break += 1;
            } else if slot.ready() {
                counts.ready += 1;
            }
        }
        self.store.set_agent_counts(counts);
    }

    pub(super) fn agent_by_extension(&self, extension: &str) -> Option<AgentId> {
        self.agents.iter().find(|(_, slot)| slot.extension == extension).map(|(id, _)| *id)
    }
}
