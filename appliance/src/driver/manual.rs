//! Agents' own calls (one-click, call back now, a callback from the list) and callbacks that
//! came due. They skip the cores: the driver dials the number the store picked and rings
//! the agent's phone at the dial, so the agent hears the ringback or the network's
//! announcement.

use std::time::Duration;

use hardware::{CallId, DialRequest};
use tokio::time::Instant;

use super::inbox::{ManualStarted, ManualTarget};
use super::{AGENT_RING_TIMEOUT, AgentSlot, CallInfo, Driver, ManualCall, caller_id_of, unix_now};
use crate::desk::{AgentLive, AgentState, DeskEvent};
use crate::store::{AttemptEnd, ManualClaim, ManualDialError};

impl Driver {
    /// Places an agent's own call (one-click, call back now, callback).
    pub(super) fn manual_dial(&mut self, agent: AgentLive, target: ManualTarget) -> Result<ManualStarted, String> {
        let agent_id = agent.agent_id;
        if !matches!(agent.state, AgentState::Available | AgentState::OneClickOnly) {
            return Err("sign in first (不可回接 for one-click projects)".to_string());
        }
        if self.agents.get(&agent_id).is_some_and(|slot| slot.call.is_some()) {
            return Err("you are on a call; finish it first".to_string());
        }
        // The phone is rung at the dial; without it the customer would get a ring-and-drop.
        if !self.telephony.registered_extensions().contains(&agent.extension) {
            return Err(format!(
                "your phone (extension {}) is not registered: check that it is on and signed in, then dial again (话机未注册)",
                agent.extension
            ));
        }
        let claim = match target {
            ManualTarget::OneClick { project_id } => self.store.claim_one_click(project_id, agent_id, &agent.username),
            ManualTarget::CallBackNow { attempt_id } => self.store.claim_call_back_now(attempt_id, agent_id, &agent.username),
            ManualTarget::Callback { callback_id } => self.store.claim_callback(callback_id, agent_id, &agent.username),
        };
        let claim = claim.map_err(|error| match error {
            ManualDialError::Db(error) => {
                tracing::error!(%error, "cannot take a number for an agent's call");
                format!("internal error: {error}")
            }
            other => other.to_string(),
        })?;
        Ok(self.place_manual(agent, claim))
    }

    pub(super) fn place_manual(&mut self, agent: AgentLive, claim: ManualClaim) -> ManualStarted {
        let agent_id = agent.agent_id;
        let now = self.now();
        let attempt_id = claim.claimed.attempt_id;
        let Some(trunk) = self.free_trunk(&claim.caller) else {
            // No line free: the attempt is closed as failed so its number is not stuck.
            let end = AttemptEnd {
                outcome: sync_protocol::Outcome::Failed,
                hangup_side: Some(sync_protocol::HangupSide::System),
                ended_at: unix_now(),
                recording_path: None,
                recording_sha256: None,
            };
            if let Err(error) = self.store.finish_attempt(attempt_id, &end) {
                tracing::error!(%error, attempt_id, "cannot close an undialable attempt");
            }
            self.desk.push(agent_id, DeskEvent::CallEnded { attempt_id, outcome: "noline".into() });
            return ManualStarted { attempt_id, phone: claim.ringing_phone };
        };
        let slot = self.agents.entry(agent_id).or_insert_with(|| AgentSlot {
            username: agent.username.clone(),
            extension: agent.extension.clone(),
            state: agent.state,
            call: None,
            wrap_up: false,
            unsaved: std::collections::HashSet::new(),
            saved_early: std::collections::HashSet::new(),
        });
        slot.state = agent.state;
        let call_id = CallId(self.next_call);
        self.next_call += 1;
        slot.call = Some(call_id);
        self.announce(agent_id);
        // Agents who pop on ring (their choice, or HQ's for the project) get the popup now,
        // number first three and last four only.
        let pops_on_ring = self.store.pops_on_ring_for(claim.claimed.batch_id, agent_id).unwrap_or(false);
        self.desk.push(agent_id, DeskEvent::Ringing { attempt_id, phone: claim.ringing_phone.clone() });
        let mut popped = false;
        if pops_on_ring {
            popped = self.send_popup(agent_id, attempt_id, true);
        }
        tracing::info!(attempt_id, call = call_id.0, %trunk, agent = %agent.username, "agent's own call dialing");
        self.calls.insert(
            call_id,
            CallInfo {
                task: super::NO_TASK,
                batch_id: claim.claimed.batch_id,
                key: 0,
                attempt_id,
                trunk: trunk.clone(),
                answered: false,
                answered_at: None,
                agent: Some(agent_id),
                owner: None,
                bridged: false,
                manual: Some(ManualCall { popped }),
                phone_missed: false,
                phone: claim.claimed.phone.clone(),
                dialed_at: Instant::now(),
                inbound: None,
            },
        );
        let _ = now;
        self.telephony.dial(DialRequest {
            call: call_id,
            trunk: trunk.clone(),
            number: claim.claimed.phone,
            caller_id: caller_id_of(&trunk),
            ring_timeout: Duration::from_secs(u64::from(claim.ring_seconds)),
        });
        // The agent's phone joins at once: the agent hears the ringback or the network's
        // announcement (空号, 停机...) as a caller would, not silence until the answer.
        self.telephony.bridge(call_id, &agent.extension, AGENT_RING_TIMEOUT, claim.auto_answer);
        ManualStarted { attempt_id, phone: claim.ringing_phone }
    }

    /// Executes armed callbacks whose time has come: the agent's phone gets the call as
    /// soon as the agent is signed in and free; until then the desk is told once. A "this
    /// agent only" callback whose agent is absent (not signed in to take calls) goes to its
    /// task once the site admin's grace period has passed; a task callback goes to its
    /// agent if free, else to the first free agent of the task.
    pub(super) fn run_due_callbacks(&mut self) {
        let now = unix_now();
        let due = match self.store.due_callbacks(now) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read due callbacks");
                return;
            }
        };
        if due.is_empty() {
            return;
        }
        let grace = i64::from(self.store.callback_grace_minutes().unwrap_or(10)) * 60;
        for mut callback in due {
            let owner = self.desk.agent_by_username(&callback.agent);
            let owner_free = owner.clone().filter(|agent| self.free_for_callback(agent));
            if callback.scope == "agent" && owner_free.is_none() {
                let absent = !owner.as_ref().is_some_and(|agent| matches!(agent.state, AgentState::Available | AgentState::OneClickOnly));
                if absent && now >= callback.due_at + grace {
                    match self.store.hand_over_callback(callback.callback_id, now) {
                        Ok(_) => {
                            tracing::info!(callback = callback.callback_id, "callback handed to its task: its agent is absent");
                            callback.scope = "task".into();
                        }
                        Err(error) => tracing::error!(%error, "cannot hand a callback over"),
                    }
                }
            }
            let taker = match owner_free {
                Some(agent) => Some(agent),
                None if callback.scope == "task" => self.free_task_agent(callback.batch_id),
                None => None,
            };
            let Some(agent) = taker else {
                if let Some(owner) = owner
                    && self.told_due.insert(callback.callback_id)
                {
                    self.desk.push(
                        owner.agent_id,
                        DeskEvent::CallbackDue { callback_id: callback.callback_id, title: String::new(), phone: String::new(), dialing: false },
                    );
                }
                continue;
            };
            self.told_due.remove(&callback.callback_id);
            let agent_id = agent.agent_id;
            match self.manual_dial(agent, ManualTarget::Callback { callback_id: callback.callback_id }) {
                Ok(started) => {
                    tracing::info!(callback = callback.callback_id, attempt = started.attempt_id, "callback executed");
                    self.desk.push(
                        agent_id,
                        DeskEvent::CallbackDue { callback_id: callback.callback_id, title: String::new(), phone: started.phone, dialing: true },
                    );
                }
                Err(reason) => tracing::warn!(callback = callback.callback_id, %reason, "callback not executed yet"),
            }
        }
    }

    /// Signed in to take calls, not on a call or in after-call work, phone registered.
    pub(super) fn free_for_callback(&self, agent: &AgentLive) -> bool {
        matches!(agent.state, AgentState::Available | AgentState::OneClickOnly)
            && !self.agents.get(&agent.agent_id).is_some_and(|slot| slot.call.is_some() || slot.wrap_up)
            && self.telephony.registered_extensions().contains(&agent.extension)
    }

    /// The first free agent (by id) who may take a task callback of `batch_id`.
    fn free_task_agent(&self, batch_id: u64) -> Option<AgentLive> {
        let takers = match self.store.callback_takers(batch_id) {
            Ok(takers) => takers,
            Err(error) => {
                tracing::error!(%error, "cannot read a task's agents");
                return None;
            }
        };
        self.desk
            .agents()
            .into_iter()
            .filter(|agent| takers.is_empty() || takers.contains(&agent.agent_id))
            .find(|agent| self.free_for_callback(agent))
    }
}
