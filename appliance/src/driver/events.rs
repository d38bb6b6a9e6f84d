//! What the lines report ([`LineEvent`]), one method per event: the customer answered, an
//! agent's phone took or missed a call, a call ended (its outcome and the agent's after-call
//! work), an extension registered.

use std::net::SocketAddr;
use std::time::Duration;

use hardware::{CallId, LineEvent};
use tokio::time::Instant;

use super::{Driver, unix_now};
use crate::desk::{AgentLive, AgentState, DeskEvent};
use crate::store::AttemptEnd;

fn sync_outcome(outcome: hardware::Outcome) -> sync_protocol::Outcome {
    match outcome {
        hardware::Outcome::Answered => sync_protocol::Outcome::Connected,
        hardware::Outcome::Busy => sync_protocol::Outcome::Busy,
        hardware::Outcome::NoAnswer => sync_protocol::Outcome::NoAnswer,
        hardware::Outcome::Rejected => sync_protocol::Outcome::Rejected,
        hardware::Outcome::Failed { .. } => sync_protocol::Outcome::Failed,
        hardware::Outcome::Abandoned => sync_protocol::Outcome::Abandoned,
    }
}

/// How a call of the agent's ended, as the desk's `ended` event names it. The desk shows
/// the reason a call did not go through; `connected` and `agenthungup` (the agent gave up
/// their own call while it rang, and knows why) show nothing.
fn desk_outcome(connected: bool, phone_missed: bool, hangup_side: Option<hardware::HangupSide>, outcome: hardware::Outcome) -> &'static str {
    if connected {
        return "connected";
    }
    if phone_missed {
        return "phonemissed";
    }
    if hangup_side == Some(hardware::HangupSide::Agent) {
        return "agenthungup";
    }
    match outcome {
        hardware::Outcome::Answered => "connected",
        hardware::Outcome::Busy => "busy",
        hardware::Outcome::NoAnswer => "noanswer",
        hardware::Outcome::Rejected => "rejected",
        hardware::Outcome::Failed { .. } => "failed",
        hardware::Outcome::Abandoned => "abandoned",
    }
}

fn sync_side(side: hardware::HangupSide) -> sync_protocol::HangupSide {
    match side {
        hardware::HangupSide::Customer => sync_protocol::HangupSide::Customer,
        hardware::HangupSide::Agent => sync_protocol::HangupSide::Agent,
        hardware::HangupSide::System => sync_protocol::HangupSide::System,
    }
}

impl Driver {
    /// Hands each event to its method.
    pub(super) fn on_line_event(&mut self, event: LineEvent) {
        match event {
            LineEvent::Ringing { call } => self.on_ringing(call),
            LineEvent::Answered { call } => self.on_answered(call),
            LineEvent::AgentRinging { call, extension } => self.on_agent_ringing(call, &extension),
            LineEvent::Bridged { call, extension } => self.on_bridged(call, extension),
            LineEvent::AgentMissed { call, extension } => self.on_agent_missed(call, extension),
            LineEvent::Ended { call, outcome, hangup_side, recording, quality } => self.on_ended(call, outcome, hangup_side, recording, quality),
            LineEvent::ExtensionRegistered { extension, contact } => self.on_extension_registered(extension, contact),
            LineEvent::ExtensionUnregistered { extension } => self.on_extension_unregistered(extension),
            LineEvent::Incoming { call, trunk, did, caller } => self.on_incoming(call, trunk, did, caller),
        }
    }

    /// The customer's side rings: nothing changes, a call counts as ringing until it is
    /// answered (the monitor reads that from the call itself).
    fn on_ringing(&mut self, _call: CallId) {}

    /// An agent's phone rings for a call: nothing changes, the call was given to the agent
    /// when it was routed (or dialed, for the agent's own call).
    fn on_agent_ringing(&mut self, _call: CallId, _extension: &str) {}

    /// The customer answered: an agent's own call is connected if the agent's phone is on
    /// already; a task's call goes to its core, which routes it to a free agent or queues it.
    fn on_answered(&mut self, call: CallId) {
        let now = self.now();
        let Some(info) = self.calls.get_mut(&call) else { return };
        info.answered = true;
        info.answered_at = Some(unix_now());
        let task_id = info.task;
        if info.inbound.is_some() {
            self.on_inbound_answered(call);
            return;
        }
        if info.manual.is_some() {
            // An agent's own call: the agent's phone was offered it at the dial. Connected
            // now if the agent is on already, else when the phone picks up.
            if info.bridged {
                self.connect(call);
            }
            return;
        }
        if let Some(run) = self.tasks.get_mut(&info.task) {
            run.dialer.call_answered(now, info.key);
        }
        // Route at once if an agent is free; hold audio only for a call that waits.
        self.drain_actions();
        if self.calls.get(&call).is_some_and(|info| info.agent.is_none()) {
            self.hold(call, task_id);
        }
    }

    /// An agent's phone took the call.
    fn on_bridged(&mut self, call: CallId, extension: String) {
        let Some(info) = self.calls.get_mut(&call) else { return };
        let agent_id = info.agent.or_else(|| {
            self.agents.iter().find(|(_, slot)| slot.extension == extension).map(|(id, _)| *id)
        });
        let Some(agent_id) = agent_id else {
            tracing::warn!(call = call.0, %extension, "bridged to an extension no agent holds");
            return;
        };
        let Some(info) = self.calls.get_mut(&call) else { return };
        info.bridged = true;
        info.agent = Some(agent_id);
        // An agent's own call still ringing: the agent listens to the early media.
        if info.answered {
            self.connect(call);
        }
    }

    /// An agent's phone did not take the call (busy, declined, rang out, not registered).
    fn on_agent_missed(&mut self, call: CallId, extension: String) {
        let now = self.now();
        let Some(info) = self.calls.get_mut(&call) else { return };
        if info.manual.is_some() {
            // The agent's phone did not take their own call: the customer is let go.
            // The agent keeps the call until it has ended, so the end frees them.
            info.phone_missed = true;
            tracing::warn!(call = call.0, %extension, "the agent's phone did not take their own call; hanging up");
            self.telephony.hangup(call);
            return;
        }
        if info.inbound.is_some() {
            self.on_inbound_missed(call, &extension);
            return;
        }
        let agent_id = info.agent.take().or_else(|| self.agent_by_extension(&extension));
        let Some(info) = self.calls.get(&call) else { return };
        let (task_id, key) = (info.task, info.key);
        let Some(agent_id) = agent_id else { return };
        tracing::warn!(call = call.0, %extension, "agent did not take the call; agent set to away");
        if let Some(run) = self.tasks.get_mut(&task_id) {
            run.dialer.call_agent_missed(now, key, agent_id);
        }
        // The core takes a miss as "not at the desk"; the desk shows the same, so the
        // agent sees why no call comes and chooses 可回接 again when back.
        if let Some(slot) = self.agents.get_mut(&agent_id) {
            slot.call = None;
            slot.state = AgentState::Away;
            self.desk.set_state(AgentLive {
                agent_id,
                username: slot.username.clone(),
                extension: slot.extension.clone(),
                state: AgentState::Away,
            });
            self.desk.push(agent_id, DeskEvent::State { state: AgentState::Away });
        }
        self.announce(agent_id);
        // Back in the queue: the customer hears hold music, not silence, until the
        // next agent takes the call or the queue timeout lets it go.
        self.hold(call, task_id);
    }

    /// The whole call is over: its outcome goes to the desk, the store and the core, and the
    /// agent is free again (or in after-call work until the record is saved).
    fn on_ended(
        &mut self,
        call: CallId,
        outcome: hardware::Outcome,
        hangup_side: Option<hardware::HangupSide>,
        recording: Option<hardware::Recording>,
        quality: hardware::quality::CallQuality,
    ) {
        let now = self.now();
        let Some(info) = self.calls.remove(&call) else { return };
        self.by_key.remove(&(info.task, info.key));
        let connected = info.bridged && info.answered;
        let end = AttemptEnd {
            outcome: if connected { sync_outcome(hardware::Outcome::Answered) } else { sync_outcome(outcome) },
            hangup_side: hangup_side.map(sync_side),
            ended_at: unix_now(),
            recording_path: recording.as_ref().map(|r| r.path.clone()),
            recording_sha256: recording.map(|r| r.sha256),
        };
        if let Some(agent_id) = info.agent {
            let outcome = desk_outcome(connected, info.phone_missed, hangup_side, outcome).to_string();
            self.desk.push(agent_id, DeskEvent::CallEnded { attempt_id: info.attempt_id, outcome });
        }
        // Written after the call's earlier writes, on the writer: a wave of calls
        // ending never holds up the next wave's answers.
        let (attempt_id, answered_at) = (info.attempt_id, info.answered_at);
        self.writer.write(move |store| {
            if let Err(error) = store.record_call_quality(attempt_id, &quality) {
                tracing::warn!(%error, attempt = attempt_id, "cannot keep the call's quality");
            }
            if let (Some(answered_at), false) = (answered_at, connected)
                && let Err(error) = store.mark_answered(attempt_id, answered_at)
            {
                tracing::error!(%error, "cannot record the answer");
            }
            match store.finish_attempt(attempt_id, &end) {
                Ok(attempt) => tracing::info!(
                    attempt = attempt.attempt_id,
                    outcome = ?attempt.outcome,
                    talk = attempt.talk_seconds,
                    "call ended"
                ),
                Err(error) => tracing::error!(%error, attempt = attempt_id, "cannot record the end of a call"),
            }
        });
        if let Some(agent_id) = info.agent {
            if let Some(slot) = self.agents.get_mut(&agent_id)
                && slot.call == Some(call)
            {
                slot.call = None;
                slot.saved_early.remove(&info.attempt_id);
                if connected {
                    slot.wrap_up = !slot.unsaved.is_empty();
                }
            }
            if info.manual.is_none()
                && let Some(run) = self.tasks.get_mut(&info.task)
            {
                run.dialer.call_ended(now, info.key);
            }
            // Free again, in after-call work, or gone: the arbiter gives the agent to a task
            // (maybe another one) or takes them from theirs, after the core heard the end.
            self.announce(agent_id);
        } else if let Some(run) = self.tasks.get_mut(&info.task) {
            if info.answered {
                run.dialer.call_ended(now, info.key);
            } else {
                run.dialer.call_failed(now, info.key);
            }
        }
        let calls = &self.calls;
        let arbiter = &mut self.arbiter;
        self.tasks.retain(|task_id, run| {
            let keep = !run.stopping || calls.values().any(|c| c.task == *task_id);
            if !keep {
                arbiter.remove_task(now, *task_id);
            }
            keep
        });
        self.apply_grants();
    }

    fn on_extension_registered(&mut self, extension: String, contact: SocketAddr) {
        tracing::info!(%extension, %contact, "extension registered");
    }

    fn on_extension_unregistered(&mut self, extension: String) {
        tracing::info!(%extension, "extension unregistered");
    }

    /// Customer and agent are both on the line (the later of the answer and the agent's
    /// pick-up): the popup, the agent's duty to save a record, the dialer core and the store
    /// learn of the conversation.
    fn connect(&mut self, call: CallId) {
        let now = self.now();
        let Some(info) = self.calls.get(&call) else { return };
        let Some(agent_id) = info.agent else { return };
        let (task_id, key, attempt_id) = (info.task, info.key, info.attempt_id);
        let answered_at = info.answered_at.unwrap_or_else(unix_now);
        let popped = info.manual.as_ref().map(|manual| manual.popped);
        let username = self.agents.get(&agent_id).map(|slot| slot.username.clone()).unwrap_or_default();
        if let Some(slot) = self.agents.get_mut(&agent_id)
            && !slot.saved_early.remove(&attempt_id)
        {
            slot.unsaved.insert(attempt_id);
        }
        match popped {
            // Shown on ring already (first three and last four digits for the whole call).
            Some(true) => {}
            Some(false) => {
                self.send_popup(agent_id, attempt_id, true);
            }
            None => {
                if let Some(run) = self.tasks.get_mut(&task_id) {
                    run.dialer.call_bridged(now, key, agent_id);
                }
                // The popup first, the disk after: the agent is talking already.
                self.send_popup(agent_id, attempt_id, false);
            }
        }
        self.desk.push(agent_id, crate::desk::DeskEvent::Talking { attempt_id });
        self.store.note_bridge(attempt_id, &username);
        self.writer.write(move |store| {
            if let Err(error) = store.mark_answered_and_bridged(attempt_id, answered_at, &username) {
                tracing::error!(%error, attempt_id, "cannot record the bridge");
            }
        });
    }

    /// Hold audio toward a waiting customer: the task's hold music once its file is here,
    /// otherwise the box's own.
    pub(super) fn hold(&mut self, call: CallId, task_id: u64) {
        let music = self.tasks.get(&task_id).and_then(|run| run.extras.hold_music);
        match music.and_then(|voice_id| self.hold_music(voice_id)) {
            Some(audio) => self.telephony.hold_with(call, audio),
            None => self.telephony.hold(call),
        }
    }

    fn hold_music(&mut self, voice_id: u64) -> Option<hardware::HoldAudio> {
        if let Some((loaded, audio)) = self.hold_music.get(&voice_id)
            && loaded.elapsed() < Duration::from_secs(60)
        {
            return Some(audio.clone());
        }
        self.hold_music.remove(&voice_id);
        let (path, _) = match self.store.hold_music_file(voice_id) {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(voice_id, %error, "cannot look up the task's hold music");
                return None;
            }
        };
        match hardware::HoldAudio::load(&path) {
            Ok(audio) => {
                self.hold_music.insert(voice_id, (Instant::now(), audio.clone()));
                Some(audio)
            }
            Err(error) => {
                tracing::warn!(voice_id, %error, "the task's hold music cannot be played; using the box's hold audio");
                None
            }
        }
    }
}
