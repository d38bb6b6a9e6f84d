//! Inbound calls (呼入): a customer calling one of the site's numbers (a trunk's DID). The
//! lines answer the call and report it; the store looks the caller up and writes the
//! `inbound` attempt; this part routes it:
//!
//! 1. a known customer goes to the agent who last talked to them, if that agent is signed in
//!    (可回接 or 不可回接), free and their phone registered;
//! 2. else it waits in its task's queue (the task of the customer's project, when it runs:
//!    its hold music, its queue timeout) for a free 可回接 agent of the task;
//! 3. else, and for an unknown caller, in the site-wide inbound queue (the box's hold audio,
//!    `inbound_queue_seconds`) for any free 可回接 agent.
//!
//! Waiting calls are offered again every second (the callbacks tick) and whenever an agent's
//! phone misses one. A call whose queue time is up hears the newest prompt of HQ's voice
//! library (if one is here) and is hung up; a known customer's call then leaves a callback
//! for the task (not armed: the agent or the site admin decides when to call back). Calling windows and the black list do not apply: a customer may
//! always call. The call is never its task core's: the cores neither count nor route it, and
//! the arbiter sees its agent as away from the tasks until it ends.

use std::time::Duration;

use hardware::CallId;
use tokio::time::Instant;

use super::{AGENT_RING_TIMEOUT, AgentSlot, CallInfo, Driver, NO_TASK, unix_now};
use crate::desk::{AgentLive, AgentState, DeskEvent};

/// The title of the callback a missed inbound call leaves (the customer called, nobody took it).
const MISSED_CALL_TITLE: &str = "呼入未接 / missed inbound call";

/// What an inbound call needs beside the call itself.
pub(super) struct InboundCall {
    /// The agent (username) who last talked to the caller, tried first.
    last_agent: Option<String>,
    /// The running task (project id) whose queue the call waits in; `None`: the site's.
    task: Option<u64>,
    /// When the caller stops waiting for an agent.
    deadline: Instant,
    /// The closing message plays; the call is hung up at this time.
    leaving_at: Option<Instant>,
}

impl Driver {
    /// The lines answered a call to one of the site's numbers.
    pub(super) fn on_incoming(&mut self, call: CallId, trunk: String, did: String, caller: String) {
        let claim = match self.store.claim_inbound(&caller, unix_now()) {
            Ok(claim) => claim,
            Err(error) => {
                tracing::error!(%error, call = call.0, "cannot record an inbound call; hanging up");
                self.telephony.hangup(call);
                return;
            }
        };
        let task = claim.project_id.filter(|project| self.tasks.get(project).is_some_and(|run| !run.stopping));
        let queue_for = match task.and_then(|task| self.tasks.get(&task)) {
            Some(run) => Duration::from_secs(u64::from(run.extras.queue_timeout)),
            None => self.inbound_queue,
        };
        tracing::info!(call = call.0, attempt = claim.attempt_id, %did, known = claim.batch_id != 0, ?task, last_agent = ?claim.last_agent, "inbound call");
        self.calls.insert(
            call,
            CallInfo {
                task: NO_TASK,
                batch_id: claim.batch_id,
                key: 0,
                attempt_id: claim.attempt_id,
                trunk,
                answered: false,
                answered_at: None,
                agent: None,
                owner: None,
                bridged: false,
                manual: None,
                phone_missed: false,
                phone: caller,
                dialed_at: Instant::now(),
                inbound: Some(InboundCall {
                    last_agent: claim.last_agent,
                    task,
                    deadline: Instant::now() + queue_for,
                    leaving_at: None,
                }),
            },
        );
    }

    /// An inbound call is on the line: to an agent now, or into its queue with hold audio.
    pub(super) fn on_inbound_answered(&mut self, call: CallId) {
        if !self.offer_inbound(call) {
            let task = self.calls.get(&call).and_then(|info| info.inbound.as_ref()).and_then(|inbound| inbound.task);
            self.hold(call, task.unwrap_or(NO_TASK));
        }
    }

    /// The agent's phone did not take an inbound call: the agent is set away (as for any
    /// call), and the caller waits on with hold audio.
    pub(super) fn on_inbound_missed(&mut self, call: CallId, extension: &str) {
        let Some(info) = self.calls.get_mut(&call) else { return };
        let offered = info.agent.take();
        let attempt_id = info.attempt_id;
        let task = info.inbound.as_ref().and_then(|inbound| inbound.task);
        let agent_id = offered.or_else(|| self.agent_by_extension(extension));
        if let Some(agent_id) = agent_id
            && let Some(slot) = self.agents.get_mut(&agent_id)
        {
            tracing::warn!(call = call.0, %extension, "agent did not take an inbound call; agent set to away");
            slot.call = None;
            slot.state = AgentState::Away;
            self.desk.set_state(AgentLive {
                agent_id,
                username: slot.username.clone(),
                extension: slot.extension.clone(),
                state: AgentState::Away,
            });
            self.desk.push(agent_id, DeskEvent::State { state: AgentState::Away });
            self.desk.push(agent_id, DeskEvent::CallEnded { attempt_id, outcome: "phonemissed".into() });
            self.announce(agent_id);
        }
        if !self.offer_inbound(call) {
            self.hold(call, task.unwrap_or(NO_TASK));
        }
    }

    /// Every second: waiting inbound calls are offered to agents who came free, those whose
    /// queue time is up get the closing message, and those whose message ended are hung up.
    pub(super) fn tick_inbound(&mut self) {
        let now = Instant::now();
        let waiting: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, info)| info.answered && info.agent.is_none() && info.inbound.is_some())
            .map(|(call, _)| *call)
            .collect();
        for call in waiting {
            let Some(inbound) = self.calls.get(&call).and_then(|info| info.inbound.as_ref()) else { continue };
            let (leaving_at, deadline) = (inbound.leaving_at, inbound.deadline);
            match leaving_at {
                Some(at) if now >= at => self.telephony.hangup(call),
                Some(_) => {}
                None if now >= deadline => self.let_inbound_go(call),
                None => {
                    self.offer_inbound(call);
                }
            }
        }
    }

    /// The queue time is up: the closing message, a callback for a known customer, then the
    /// hang-up (at once when no message is here).
    fn let_inbound_go(&mut self, call: CallId) {
        let Some(info) = self.calls.get(&call) else { return };
        let attempt_id = info.attempt_id;
        let last_agent = info.inbound.as_ref().and_then(|inbound| inbound.last_agent.clone());
        match self.store.inbound_callback(attempt_id, last_agent.as_deref(), MISSED_CALL_TITLE) {
            Ok(Some(callback)) => tracing::info!(call = call.0, callback, "inbound call not taken; callback left for its task"),
            Ok(None) => tracing::info!(call = call.0, "inbound call of an unknown caller not taken"),
            Err(error) => tracing::error!(%error, call = call.0, "cannot leave the callback of a missed inbound call"),
        }
        let message = match self.store.inbound_message_file() {
            Ok(Some(path)) => match hardware::HoldAudio::load(&path) {
                Ok(audio) => Some(audio),
                Err(error) => {
                    tracing::warn!(%error, "the inbound message cannot be played");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot look up the inbound message");
                None
            }
        };
        let leaving_at = match message {
            Some(audio) => {
                let lasts = Duration::from_secs_f64(audio.seconds());
                self.telephony.hold_with(call, audio);
                Instant::now() + lasts
            }
            None => Instant::now(),
        };
        if let Some(inbound) = self.calls.get_mut(&call).and_then(|info| info.inbound.as_mut()) {
            inbound.leaving_at = Some(leaving_at);
        }
        if leaving_at <= Instant::now() {
            self.telephony.hangup(call);
        }
    }

    /// Offers a waiting inbound call to the agent it belongs to; true if an agent's phone is
    /// now rung.
    fn offer_inbound(&mut self, call: CallId) -> bool {
        let Some(info) = self.calls.get(&call) else { return false };
        let Some(inbound) = info.inbound.as_ref() else { return false };
        if info.agent.is_some() || inbound.leaving_at.is_some() {
            return false;
        }
        let last = inbound
            .last_agent
            .as_deref()
            .and_then(|username| self.desk.agent_by_username(username))
            .filter(|agent| self.free_for_callback(agent));
        let agent = last.or_else(|| self.free_queue_agent(inbound.task));
        let Some(agent) = agent else { return false };
        self.ring_inbound(call, agent);
        true
    }

    /// A free 可回接 agent of the task (every agent when it names none), or of the site.
    fn free_queue_agent(&self, task: Option<u64>) -> Option<AgentLive> {
        let run = task.and_then(|task| self.tasks.get(&task));
        self.desk
            .agents()
            .into_iter()
            .filter(|agent| agent.state == AgentState::Available)
            .filter(|agent| run.is_none_or(|run| run.takes(agent.agent_id)))
            .find(|agent| self.free_for_callback(agent))
    }

    /// Rings the agent's phone for the call; the popup comes when the phone picks up.
    fn ring_inbound(&mut self, call: CallId, agent: AgentLive) {
        let agent_id = agent.agent_id;
        let slot = self.agents.entry(agent_id).or_insert_with(|| AgentSlot {
            username: agent.username.clone(),
            extension: agent.extension.clone(),
            state: agent.state,
            call: None,
            wrap_up: false,
            unsaved: std::collections::HashSet::new(),
            saved_early: std::collections::HashSet::new(),
        });
        slot.call = Some(call);
        let Some(info) = self.calls.get_mut(&call) else { return };
        info.agent = Some(agent_id);
        let (attempt_id, phone) = (info.attempt_id, sync_protocol::mask_middle_digits(&info.phone));
        self.announce(agent_id);
        self.desk.push(agent_id, DeskEvent::Ringing { attempt_id, phone });
        tracing::info!(call = call.0, agent = %agent.username, "inbound call offered to an agent");
        self.telephony.bridge(call, &agent.extension, AGENT_RING_TIMEOUT, true);
    }
}
