//! The dialer driver: the actor that carries events between the lines, the dialer cores, the
//! store and the agents' desks. It decides nothing itself: pacing and routing are the
//! sans-IO `dialer::Dialer`'s, one per running task.
//!
//! Data flow:
//! - Inbox ([`DriverMsg`]): agents' state changes and saved records from the web, task
//!   start/stop, extension changes, status queries.
//! - Lines ([`LineEvent`]): ringing, answered, bridged, agent missed, ended, registrations.
//! - A timer at the earliest `Dialer::poll_timeout` of all cores; and a slow tick that
//!   re-reads which tasks are dialable, so HQ's pause/end (arriving through the sync link
//!   into the store) takes effect without a message.
//! - Actions out: `Dial` → take a number from the store (attempt row "dialing") →
//!   `Telephony::dial`; `Route` → `Telephony::bridge` to the agent's extension; `Drop` →
//!   `Telephony::hangup`. `Ended` → final outcome and its outbox entry in one transaction.
//!
//! Agents are shared by every running task: when one core routes a call to an agent, the
//! others are told the agent is unavailable until the agent is free again. An agent whose
//! call ended is in after-call work (unavailable) until they save the business record.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dialer::{Action, AgentId, CallKey, Dialer, PacingConfig, PacingMode};
use hardware::{CallId, DialRequest, ExtensionConfig, LineEvent, Telephony, TelephonyConfig};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ApplianceConfig;
use crate::control::{DriverHandle, DriverMsg, LineStatus};
use crate::desk::{AgentLive, AgentState, Desk};
use crate::store::{AttemptEnd, Store, TaskParams};

/// How long an agent's phone rings before the call goes back to the queue.
const AGENT_RING_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the driver re-reads the dialable tasks from the store.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// Starts the lines and the driver. If the lines cannot start (SIP port taken), the box
/// still serves its web UI and the status page says why.
pub async fn spawn(
    config: &ApplianceConfig,
    store: Arc<Store>,
    desk: Arc<Desk>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> (DriverHandle, SocketAddr) {
    let extensions = match store.extensions() {
        Ok(list) => list
            .into_iter()
            .map(|ext| ExtensionConfig { extension: ext.extension, password: ext.password })
            .collect(),
        Err(error) => {
            tracing::error!(%error, "cannot read extensions; phones cannot register until fixed");
            Vec::new()
        }
    };
    let telephony_config = TelephonyConfig {
        sip_bind: config.sip_bind,
        public_ip: config.public_ip,
        rtp_ports: config.rtp_ports,
        trunks: config.trunks.clone(),
        extensions,
        recordings_dir: config.data_dir.join("recordings"),
        hold_audio: config.hold_audio.clone(),
    };
    let (telephony, events) = match Telephony::start(telephony_config).await {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(%error, "telephony did not start; the box runs without lines");
            return (DriverHandle::without_lines(error.to_string()), config.sip_bind);
        }
    };
    let sip_addr = telephony.local_sip_addr();
    let (sender, inbox) = mpsc::unbounded_channel();
    let driver = Driver {
        store,
        desk,
        telephony,
        trunks: config.trunks.iter().map(|t| (t.name.clone(), t.channels)).collect(),
        origin: Instant::now(),
        tasks: BTreeMap::new(),
        calls: HashMap::new(),
        by_key: HashMap::new(),
        next_call: 1,
        agents: HashMap::new(),
    };
    tasks.spawn(driver.run(inbox, events, shutdown));
    (DriverHandle::new(sender), sip_addr)
}

/// One task being dialed.
struct TaskRun {
    dialer: Dialer,
    params: TaskParams,
    /// Stopped (at the site or by HQ): no new dials; removed once its calls are over.
    stopping: bool,
}

/// One call on the lines.
struct CallInfo {
    batch_id: u64,
    key: CallKey,
    attempt_id: u64,
    trunk: String,
    answered: bool,
    /// The agent offered or talking, if any.
    agent: Option<AgentId>,
    bridged: bool,
}

/// An agent as the driver needs them.
struct AgentSlot {
    username: String,
    extension: String,
    state: AgentState,
    /// Offered or talking on this call.
    call: Option<CallId>,
    /// After-call work: their last call ended and its record is not saved yet.
    wrap_up: bool,
}

impl AgentSlot {
    fn ready(&self) -> bool {
        self.state == AgentState::Available && self.call.is_none() && !self.wrap_up
    }
}

struct Driver {
    store: Arc<Store>,
    desk: Arc<Desk>,
    telephony: Telephony,
    /// Trunk name and its channel count, in configuration order.
    trunks: Vec<(String, u32)>,
    origin: Instant,
    tasks: BTreeMap<u64, TaskRun>,
    calls: HashMap<CallId, CallInfo>,
    by_key: HashMap<(u64, CallKey), CallId>,
    next_call: u64,
    agents: HashMap<AgentId, AgentSlot>,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

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

fn sync_side(side: hardware::HangupSide) -> sync_protocol::HangupSide {
    match side {
        hardware::HangupSide::Customer => sync_protocol::HangupSide::Customer,
        hardware::HangupSide::Agent => sync_protocol::HangupSide::Agent,
        hardware::HangupSide::System => sync_protocol::HangupSide::System,
    }
}

impl Driver {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<DriverMsg>,
        mut events: mpsc::UnboundedReceiver<LineEvent>,
        shutdown: CancellationToken,
    ) {
        self.reconcile_tasks();
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.drain_actions();
            let wake = self
                .tasks
                .values()
                .filter_map(|run| run.dialer.poll_timeout())
                .min()
                .map(|at| self.origin + at)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = inbox.recv() => match message {
                    Some(message) => self.on_message(message),
                    None => break,
                },
                event = events.recv() => match event {
                    Some(event) => self.on_line_event(event),
                    None => {
                        tracing::error!("telephony driver stopped; the dialer stops too");
                        break;
                    }
                },
                _ = tokio::time::sleep_until(wake) => {}
                _ = reconcile.tick() => self.reconcile_tasks(),
            }
        }
        for call in self.calls.keys() {
            self.telephony.hangup(*call);
        }
    }

    fn pacing(&self, params: TaskParams) -> PacingConfig {
        // Never more calls than the trunks have channels (S2: "never above the caller's
        // line count"), or numbers would be wasted on calls that cannot be placed.
        let channels: u32 = self.trunks.iter().map(|(_, channels)| *channels).sum();
        PacingConfig {
            mode: PacingMode::FixedRatio { ratio: params.ratio },
            max_concurrency: params.max_concurrency.min(channels.max(1)),
            cool_down: Duration::from_secs(3),
            queue_timeout: Duration::from_secs(35),
            abandon_threshold: Duration::from_secs(2),
        }
    }

    /// Brings the running cores in line with the store's dialable tasks.
    fn reconcile_tasks(&mut self) {
        let dialable = match self.store.dialable_tasks() {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(%error, "cannot read the dialable tasks");
                return;
            }
        };
        let now = self.now();
        for (batch_id, params) in &dialable {
            let pacing = self.pacing(*params);
            match self.tasks.get_mut(batch_id) {
                Some(run) => {
                    if run.params != *params || run.stopping {
                        run.dialer.set_config(pacing, now);
                        run.params = *params;
                        run.stopping = false;
                    }
                }
                None => {
                    tracing::info!(batch_id, ?params, "task starts dialing");
                    let mut dialer = Dialer::new(pacing, now);
                    for (agent_id, agent) in &self.agents {
                        if agent.ready() {
                            dialer.agent_available(now, *agent_id);
                        }
                    }
                    self.tasks.insert(*batch_id, TaskRun { dialer, params: *params, stopping: false });
                }
            }
        }
        for (batch_id, run) in self.tasks.iter_mut() {
            if !run.stopping && !dialable.iter().any(|(id, _)| id == batch_id) {
                tracing::info!(batch_id, "task stops dialing; calls in progress carry on");
                run.stopping = true;
            }
        }
        let calls = &self.calls;
        self.tasks.retain(|batch_id, run| !run.stopping || calls.values().any(|c| c.batch_id == *batch_id));
    }

    fn on_message(&mut self, message: DriverMsg) {
        match message {
            DriverMsg::AgentState { agent } => self.on_agent_state(agent),
            DriverMsg::TasksChanged => self.reconcile_tasks(),
            DriverMsg::RecordSaved { agent_id } => {
                let Some(slot) = self.agents.get(&agent_id) else { return };
                let unsaved = self.store.unsaved_attempts(&slot.username).map(|list| list.len()).unwrap_or(0);
                let was_ready = slot.ready();
                if let Some(slot) = self.agents.get_mut(&agent_id)
                    && slot.wrap_up
                    && unsaved == 0
                {
                    slot.wrap_up = false;
                }
                self.announce(agent_id, was_ready, None);
            }
            DriverMsg::ExtensionsChanged => match self.store.extensions() {
                Ok(list) => self.telephony.set_extensions(
                    list.into_iter()
                        .map(|ext| ExtensionConfig { extension: ext.extension, password: ext.password })
                        .collect(),
                ),
                Err(error) => tracing::error!(%error, "cannot read extensions"),
            },
            DriverMsg::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn status(&self) -> LineStatus {
        let mut status = LineStatus {
            registered_extensions: self.telephony.registered_extensions(),
            running_tasks: self.tasks.iter().filter(|(_, run)| !run.stopping).map(|(id, _)| *id).collect(),
            ..LineStatus::default()
        };
        for run in self.tasks.values() {
            let stats = run.dialer.stats();
            status.ringing += stats.ringing;
            status.queued += stats.queued;
            status.offered += stats.offered;
            status.talking += stats.talking;
        }
        if self.trunks.is_empty() {
            status.problem = Some("no trunk is configured: add [[trunks]] to appliance.toml".to_string());
        }
        status
    }

    fn on_agent_state(&mut self, agent: AgentLive) {
        let agent_id = agent.agent_id;
        let was_ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
        let slot = self.agents.entry(agent_id).or_insert_with(|| AgentSlot {
            username: agent.username.clone(),
            extension: agent.extension.clone(),
            state: AgentState::SignedOut,
            call: None,
            wrap_up: false,
        });
        slot.state = agent.state;
        slot.extension = agent.extension;
        if agent.state == AgentState::Available && slot.call.is_none() {
            // Coming back to 可回接 is the agent's word that earlier calls are dealt with.
            slot.wrap_up = false;
        }
        self.announce(agent_id, was_ready, None);
    }

    /// Tells the cores (all but `except`) when an agent's readiness changed.
    fn announce(&mut self, agent_id: AgentId, was_ready: bool, except: Option<u64>) {
        let Some(slot) = self.agents.get(&agent_id) else { return };
        let ready = slot.ready();
        if ready == was_ready {
            return;
        }
        let now = self.now();
        for (batch_id, run) in self.tasks.iter_mut() {
            if Some(*batch_id) == except {
                continue;
            }
            if ready {
                run.dialer.agent_available(now, agent_id);
            } else {
                run.dialer.agent_unavailable(now, agent_id);
            }
        }
    }

    /// Drains every core's actions until none has anything to do.
    fn drain_actions(&mut self) {
        loop {
            let now = self.now();
            let mut acted = false;
            let batch_ids: Vec<u64> = self.tasks.keys().copied().collect();
            for batch_id in batch_ids {
                let Some(run) = self.tasks.get_mut(&batch_id) else { continue };
                let Some(action) = run.dialer.poll_action(now) else { continue };
                acted = true;
                match action {
                    Action::Dial { call } => self.dial(batch_id, call),
                    Action::Route { call, agent } => self.route(batch_id, call, agent),
                    Action::Drop { call } => {
                        if let Some(call_id) = self.by_key.get(&(batch_id, call)) {
                            tracing::info!(batch_id, call, "queue timeout: call dropped");
                            self.telephony.hangup(*call_id);
                        }
                    }
                }
            }
            if !acted {
                return;
            }
        }
    }

    fn free_trunk(&self) -> Option<String> {
        self.trunks.iter().find_map(|(name, channels)| {
            let in_use = self.calls.values().filter(|call| call.trunk == *name).count() as u32;
            (in_use < *channels).then(|| name.clone())
        })
    }

    fn dial(&mut self, batch_id: u64, key: CallKey) {
        let now = self.now();
        let Some(run) = self.tasks.get_mut(&batch_id) else { return };
        if run.stopping {
            run.dialer.call_no_number(now, key);
            return;
        }
        let ring_seconds = run.params.ring_seconds;
        let Some(trunk) = self.free_trunk() else {
            if let Some(run) = self.tasks.get_mut(&batch_id) {
                run.dialer.call_no_number(now, key);
            }
            return;
        };
        let claimed = match self.store.claim_next_number(batch_id) {
            Ok(Some(claimed)) => claimed,
            Ok(None) => {
                if let Some(run) = self.tasks.get_mut(&batch_id) {
                    run.dialer.call_no_number(now, key);
                }
                return;
            }
            Err(error) => {
                tracing::error!(%error, batch_id, "cannot take a number");
                if let Some(run) = self.tasks.get_mut(&batch_id) {
                    run.dialer.call_no_number(now, key);
                }
                return;
            }
        };
        let call_id = CallId(self.next_call);
        self.next_call += 1;
        tracing::info!(batch_id, attempt = claimed.attempt_id, call = call_id.0, %trunk, "dialing");
        self.calls.insert(
            call_id,
            CallInfo {
                batch_id,
                key,
                attempt_id: claimed.attempt_id,
                trunk: trunk.clone(),
                answered: false,
                agent: None,
                bridged: false,
            },
        );
        self.by_key.insert((batch_id, key), call_id);
        self.telephony.dial(DialRequest {
            call: call_id,
            trunk,
            number: claimed.phone,
            caller_id: String::new(),
            ring_timeout: Duration::from_secs(u64::from(ring_seconds)),
        });
    }

    fn route(&mut self, batch_id: u64, key: CallKey, agent_id: AgentId) {
        let now = self.now();
        let call_id = self.by_key.get(&(batch_id, key)).copied();
        let extension = self.agents.get(&agent_id).map(|slot| slot.extension.clone());
        let (Some(call_id), Some(extension)) = (call_id, extension) else {
            if let Some(run) = self.tasks.get_mut(&batch_id) {
                run.dialer.call_agent_missed(now, key, agent_id);
            }
            return;
        };
        let was_ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
        if let Some(slot) = self.agents.get_mut(&agent_id) {
            slot.call = Some(call_id);
        }
        if let Some(call) = self.calls.get_mut(&call_id) {
            call.agent = Some(agent_id);
        }
        // The other tasks' cores must not route to this agent meanwhile.
        self.announce(agent_id, was_ready, Some(batch_id));
        tracing::info!(batch_id, call = call_id.0, %extension, "offering the call to an agent");
        self.telephony.bridge(call_id, &extension, AGENT_RING_TIMEOUT, true);
    }

    fn agent_by_extension(&self, extension: &str) -> Option<AgentId> {
        self.agents.iter().find(|(_, slot)| slot.extension == extension).map(|(id, _)| *id)
    }

    fn on_line_event(&mut self, event: LineEvent) {
        let now = self.now();
        match event {
            LineEvent::Ringing { .. } | LineEvent::AgentRinging { .. } => {}
            LineEvent::Answered { call } => {
                let Some(info) = self.calls.get_mut(&call) else { return };
                info.answered = true;
                if let Err(error) = self.store.mark_answered(info.attempt_id, unix_now()) {
                    tracing::error!(%error, "cannot record the answer");
                }
                if let Some(run) = self.tasks.get_mut(&info.batch_id) {
                    run.dialer.call_answered(now, info.key);
                }
                // Hold audio until an agent is found; a route in the same drain replaces it.
                self.telephony.hold(call);
            }
            LineEvent::Bridged { call, extension } => {
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
                let (batch_id, key, attempt_id) = (info.batch_id, info.key, info.attempt_id);
                if let Some(run) = self.tasks.get_mut(&batch_id) {
                    run.dialer.call_bridged(now, key, agent_id);
                }
                let username = self.agents.get(&agent_id).map(|slot| slot.username.clone()).unwrap_or_default();
                if let Err(error) = self.store.mark_bridged(attempt_id, &username) {
                    tracing::error!(%error, "cannot record the bridge");
                }
                match self.store.popup(attempt_id) {
                    Ok(Some(popup)) => {
                        let tabs = self.desk.push_popup(agent_id, &popup);
                        tracing::info!(attempt_id, agent = %username, tabs, "popup sent");
                    }
                    Ok(None) => {}
                    Err(error) => tracing::error!(%error, attempt_id, "cannot build the popup"),
                }
            }
            LineEvent::AgentMissed { call, extension } => {
                let Some(info) = self.calls.get_mut(&call) else { return };
                let agent_id = info.agent.take().or_else(|| self.agent_by_extension(&extension));
                let Some(info) = self.calls.get(&call) else { return };
                let (batch_id, key) = (info.batch_id, info.key);
                let Some(agent_id) = agent_id else { return };
                tracing::warn!(call = call.0, %extension, "agent did not take the call; agent set to away");
                if let Some(run) = self.tasks.get_mut(&batch_id) {
                    run.dialer.call_agent_missed(now, key, agent_id);
                }
                // The core takes a miss as "not at the desk"; the desk shows the same, so the
                // agent sees why no call comes and chooses 可回接 again when back.
                let was_ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
                if let Some(slot) = self.agents.get_mut(&agent_id) {
                    slot.call = None;
                    slot.state = AgentState::Away;
                    self.desk.set_state(AgentLive {
                        agent_id,
                        username: slot.username.clone(),
                        extension: slot.extension.clone(),
                        state: AgentState::Away,
                    });
                }
                self.announce(agent_id, was_ready, Some(batch_id));
            }
            LineEvent::Ended { call, outcome, hangup_side, recording } => {
                let Some(info) = self.calls.remove(&call) else { return };
                self.by_key.remove(&(info.batch_id, info.key));
                let end = AttemptEnd {
                    outcome: if info.bridged { sync_outcome(hardware::Outcome::Answered) } else { sync_outcome(outcome) },
                    hangup_side: hangup_side.map(sync_side),
                    ended_at: unix_now(),
                    recording_path: recording.as_ref().map(|r| r.path.clone()),
                    recording_sha256: recording.map(|r| r.sha256),
                };
                match self.store.finish_attempt(info.attempt_id, &end) {
                    Ok(attempt) => tracing::info!(
                        attempt = attempt.attempt_id,
                        outcome = ?attempt.outcome,
                        talk = attempt.talk_seconds,
                        "call ended"
                    ),
                    Err(error) => tracing::error!(%error, attempt = info.attempt_id, "cannot record the end of a call"),
                }
                if let Some(agent_id) = info.agent {
                    let was_ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
                    if let Some(slot) = self.agents.get_mut(&agent_id)
                        && slot.call == Some(call)
                    {
                        slot.call = None;
                        if info.bridged {
                            let unsaved = self.store.unsaved_attempts(&slot.username).map(|l| l.len()).unwrap_or(0);
                            slot.wrap_up = unsaved > 0;
                        }
                    }
                    let ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
                    if let Some(run) = self.tasks.get_mut(&info.batch_id) {
                        if !ready {
                            // After-call work, or a state change during the call: reported
                            // before call_ended, as the core asks.
                            run.dialer.agent_unavailable(now, agent_id);
                        }
                        run.dialer.call_ended(now, info.key);
                    }
                    self.announce(agent_id, was_ready, Some(info.batch_id));
                } else if let Some(run) = self.tasks.get_mut(&info.batch_id) {
                    if info.answered {
                        run.dialer.call_ended(now, info.key);
                    } else {
                        run.dialer.call_failed(now, info.key);
                    }
                }
                let calls = &self.calls;
                self.tasks.retain(|batch_id, run| !run.stopping || calls.values().any(|c| c.batch_id == *batch_id));
            }
            LineEvent::ExtensionRegistered { extension, contact } => {
                tracing::info!(%extension, %contact, "extension registered");
            }
            LineEvent::ExtensionUnregistered { extension } => {
                tracing::info!(%extension, "extension unregistered");
            }
        }
    }
}
