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
//! - Agents' own calls (one-click, call back now, callbacks) skip the cores: the driver
//!   dials the number the store picked and puts the answered call straight through to that
//!   agent. A one-second tick executes callbacks that have come due.
//!
//! Agents are shared by every running task: when one core routes a call to an agent, the
//! others are told the agent is unavailable until the agent is free again. An agent whose
//! call ended is in after-call work (unavailable) until they save the business record.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dialer::{Action, AgentId, CallKey, Dialer, PacingConfig, PacingMode};
use hardware::{CallId, DialRequest, ExtensionConfig, LineEvent, Telephony};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ApplianceConfig;
use crate::control::{DriverHandle, DriverMsg, LineStatus, LiveCall, ManualStarted, ManualTarget};
use crate::desk::{AgentLive, AgentState, Desk, DeskEvent};
use crate::store::{AttemptEnd, ManualClaim, ManualDialError, Store, TaskExtras, TaskParams, mask_phone};

/// How long an agent's phone rings before the call goes back to the queue.
const AGENT_RING_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the driver re-reads the dialable tasks from the store.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How often callbacks that came due are looked for.
const CALLBACKS_EVERY: Duration = Duration::from_secs(1);

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
    let telephony_config = config.telephony_config(extensions);
    let (telephony, events) = match Telephony::start_with(telephony_config, config.telephony.clone()).await {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(%error, "telephony did not start; the box runs without lines");
            return (DriverHandle::without_lines(error.to_string()), config.sip_bind);
        }
    };
    let sip_addr = telephony.local_sip_addr();
    let (sender, inbox) = mpsc::unbounded_channel();
    let driver = Driver {
        writer: Writer::spawn(store.clone()),
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
        told_due: std::collections::HashSet::new(),
        hold_music: HashMap::new(),
    };
    tasks.spawn(driver.run(inbox, events, shutdown));
    (DriverHandle::new(sender), sip_addr)
}

/// A store write the driver does not wait for.
type WriteJob = Box<dyn FnOnce(&Store) + Send>;

/// Writes the driver does not wait for (the answer and the bridge of a call, a popup shown),
/// applied in order on a thread of their own: a call is never held up by a disk flush, which
/// matters when a hundred calls are answered at once. One thread applies them all, so an
/// attempt's writes keep their order; [`Writer::flush`] waits for the queue before anything
/// that reads what was written (the end of a call, a saved record).
struct Writer {
    sender: std::sync::mpsc::Sender<WriteJob>,
}

impl Writer {
    fn spawn(store: Arc<Store>) -> Writer {
        let (sender, receiver) = std::sync::mpsc::channel::<WriteJob>();
        let started = std::thread::Builder::new().name("store-writer".into()).spawn(move || {
            while let Ok(job) = receiver.recv() {
                job(&store);
            }
        });
        if let Err(error) = started {
            // Without the thread every write is lost; say so loudly, the box cannot record.
            tracing::error!(%error, "cannot start the store writer thread; calls will not be recorded");
        }
        Writer { sender }
    }

    fn write(&self, job: impl FnOnce(&Store) + Send + 'static) {
        if self.sender.send(Box::new(job)).is_err() {
            tracing::error!("the store writer has stopped; a call's record is lost");
        }
    }

    /// Blocks until every write queued so far is applied.
    fn flush(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.write(move |_| {
            let _ = done.send(());
        });
        let _ = wait.recv_timeout(Duration::from_secs(10));
    }
}

/// One task being dialed.
struct TaskRun {
    dialer: Dialer,
    params: TaskParams,
    extras: TaskExtras,
    /// The task's agents; empty means every agent.
    agents: Vec<AgentId>,
    /// Stopped (at the site or by HQ): no new dials; removed once its calls are over.
    stopping: bool,
}

impl TaskRun {
    fn takes(&self, agent: AgentId) -> bool {
        self.agents.is_empty() || self.agents.contains(&agent)
    }
}

/// One call on the lines.
struct CallInfo {
    batch_id: u64,
    key: CallKey,
    attempt_id: u64,
    trunk: String,
    answered: bool,
    /// When the customer answered (unix seconds), written with the bridge or the end.
    answered_at: Option<i64>,
    /// The agent offered or talking, if any.
    agent: Option<AgentId>,
    /// The agent's phone is on the call. For an agent's own call this comes while the
    /// customer still rings (the agent hears the ringback or the network's announcement);
    /// the call is connected once `answered` is true as well.
    bridged: bool,
    /// An agent's own call: it goes to that agent, outside the cores.
    manual: Option<ManualCall>,
    /// The agent's phone did not take their own call (not registered, busy, declined, rang
    /// out); the desk says so when the call ends.
    phone_missed: bool,
    phone: String,
    dialed_at: Instant,
}

/// What an agent's own call needs on answer (the agent is [`CallInfo::agent`]).
struct ManualCall {
    /// The popup was shown while ringing.
    popped: bool,
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
    /// Calls put through to this agent whose business record is not saved yet; known here
    /// so that the end of a call never waits on the store to learn it.
    unsaved: std::collections::HashSet<u64>,
    /// Records saved during the current call before it was bridged (a popup shown while
    /// ringing can be saved before the customer answers).
    saved_early: std::collections::HashSet<u64>,
}

impl AgentSlot {
    fn ready(&self) -> bool {
        self.state == AgentState::Available && self.call.is_none() && !self.wrap_up
    }
}

struct Driver {
    store: Arc<Store>,
    writer: Writer,
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
    /// Callbacks whose agent was told they are due but was not free.
    told_due: std::collections::HashSet<u64>,
    /// Tasks' hold music, decoded once (by voice id, with when it was loaded: HQ may replace
    /// or delete a file, so an entry is looked up again after a minute).
    hold_music: HashMap<u64, (Instant, hardware::HoldAudio)>,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The caller id a line presents: its name when that is a number (the site names its
/// lines by their caller numbers), else none and the carrier's default applies.
fn caller_id_of(trunk: &str) -> String {
    if !trunk.is_empty() && trunk.bytes().all(|b| b.is_ascii_digit()) { trunk.to_string() } else { String::new() }
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
        let mut callbacks = tokio::time::interval(CALLBACKS_EVERY);
        callbacks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                _ = callbacks.tick() => {
                    self.run_due_callbacks();
                    self.publish_agent_counts();
                }
            }
        }
        for call in self.calls.keys() {
            self.telephony.hangup(*call);
        }
        // Whatever is queued is written before the driver goes.
        self.writer.flush();
    }

    fn pacing(&self, params: TaskParams, extras: &TaskExtras) -> PacingConfig {
        // Never more calls than the caller's lines have channels (S2: "never above the
        // caller's line count"), or numbers would be wasted on calls that cannot be placed.
        let channels: u32 = self
            .trunks
            .iter()
            .filter(|(name, _)| extras.caller.is_empty() || *name == extras.caller)
            .map(|(_, channels)| *channels)
            .sum();
        let mode = match extras.pacing.as_str() {
            "progressive" => PacingMode::Progressive,
            "adaptive" => PacingMode::Adaptive { abandon_cap: extras.abandon_cap_percent / 100.0 },
            // The manual's mode, and what a task that never chose one does.
            _ => PacingMode::FixedRatio { ratio: params.ratio },
        };
        PacingConfig {
            mode,
            max_concurrency: params.max_concurrency.min(channels.max(1)),
            cool_down: Duration::from_secs(u64::from(extras.cool_down)),
            queue_timeout: Duration::from_secs(u64::from(extras.queue_timeout)),
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
            let (extras, task_agents) = match self.store.task_settings(*batch_id) {
                Ok(Some(settings)) => (settings.extras, settings.agents),
                Ok(None) => continue,
                Err(error) => {
                    tracing::error!(%error, batch_id, "cannot read the task's settings");
                    continue;
                }
            };
            let pacing = self.pacing(*params, &extras);
            let ready: Vec<AgentId> =
                self.agents.iter().filter(|(_, agent)| agent.ready()).map(|(id, _)| *id).collect();
            match self.tasks.get_mut(batch_id) {
                Some(run) => {
                    if run.params != *params || run.extras != extras || run.stopping {
                        run.dialer.set_config(pacing, now);
                        run.params = *params;
                        run.extras = extras;
                        run.stopping = false;
                    }
                    if run.agents != task_agents {
                        // Agents joining or leaving the task's queue (S1) while it runs.
                        let before: Vec<bool> = ready.iter().map(|id| run.takes(*id)).collect();
                        run.agents = task_agents;
                        for (agent_id, took) in ready.iter().zip(before) {
                            match (took, run.takes(*agent_id)) {
                                (false, true) => run.dialer.agent_available(now, *agent_id),
                                (true, false) => run.dialer.agent_unavailable(now, *agent_id),
                                _ => {}
                            }
                        }
                    }
                }
                None => {
                    tracing::info!(batch_id, ?params, ?extras, "task starts dialing");
                    let mut dialer = Dialer::new(pacing, now);
                    let run_agents = task_agents;
                    for agent_id in &ready {
                        if run_agents.is_empty() || run_agents.contains(agent_id) {
                            dialer.agent_available(now, *agent_id);
                        }
                    }
                    self.tasks.insert(
                        *batch_id,
                        TaskRun { dialer, params: *params, extras, agents: run_agents, stopping: false },
                    );
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
            DriverMsg::RecordSaved { agent_id, attempt_id } => {
                let Some(slot) = self.agents.get_mut(&agent_id) else { return };
                let was_ready = slot.ready();
                if !slot.unsaved.remove(&attempt_id) && slot.call.is_some() {
                    slot.saved_early.insert(attempt_id);
                }
                if slot.wrap_up && slot.unsaved.is_empty() {
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
            DriverMsg::ManualDial { agent, target, reply } => {
                let _ = reply.send(self.manual_dial(agent, target));
            }
        }
    }

    /// Places an agent's own call (one-click, call back now, callback).
    fn manual_dial(&mut self, agent: AgentLive, target: ManualTarget) -> Result<ManualStarted, String> {
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

    fn place_manual(&mut self, agent: AgentLive, claim: ManualClaim) -> ManualStarted {
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
        let was_ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
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
        self.announce(agent_id, was_ready, None);
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
                batch_id: claim.claimed.batch_id,
                key: 0,
                attempt_id,
                trunk: trunk.clone(),
                answered: false,
                answered_at: None,
                agent: Some(agent_id),
                bridged: false,
                manual: Some(ManualCall { popped }),
                phone_missed: false,
                phone: claim.claimed.phone.clone(),
                dialed_at: Instant::now(),
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

    /// Pushes the popup of `attempt_id` to the agent; true if it was built. The popup is
    /// built for the agent before the bridge is written, and `remember` (an agent's own call)
    /// records that it was shown after it went out.
    fn send_popup(&mut self, agent_id: AgentId, attempt_id: u64, remember: bool) -> bool {
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

    /// Executes armed callbacks whose time has come: the agent's phone gets the call as
    /// soon as the agent is signed in and free; until then the desk is told once.
    /// Tells the store how many agents are in each state, for the live figures HQ's
    /// wallboard gets (the store keeps no agent state of its own).
    fn publish_agent_counts(&self) {
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

    fn run_due_callbacks(&mut self) {
        let due = match self.store.due_callbacks(unix_now()) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read due callbacks");
                return;
            }
        };
        for callback in due {
            let Some(agent) = self.desk.agent_by_username(&callback.agent) else { continue };
            let free = matches!(agent.state, AgentState::Available | AgentState::OneClickOnly)
                && !self.agents.get(&agent.agent_id).is_some_and(|slot| slot.call.is_some() || slot.wrap_up)
                && self.telephony.registered_extensions().contains(&agent.extension);
            if !free {
                if self.told_due.insert(callback.callback_id) {
                    self.desk.push(
                        agent.agent_id,
                        DeskEvent::CallbackDue { callback_id: callback.callback_id, title: String::new(), phone: String::new(), dialing: false },
                    );
                }
                continue;
            }
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
        let mut calls: Vec<LiveCall> = self
            .calls
            .values()
            .map(|call| LiveCall {
                attempt_id: call.attempt_id,
                batch_id: call.batch_id,
                state: if call.bridged && call.answered {
                    "talking"
                } else if call.agent.is_some() && call.answered {
                    "offered"
                } else if call.answered {
                    "queued"
                } else {
                    "ringing"
                },
                phone: mask_phone(&call.phone),
                agent: call.agent.and_then(|id| self.agents.get(&id)).map(|slot| slot.username.clone()),
                seconds: call.dialed_at.elapsed().as_secs(),
                kind: if call.manual.is_some() { "manual" } else { "predictive" },
            })
            .collect();
        calls.sort_by_key(|call| call.attempt_id);
        // Agents' own calls are outside the cores' figures; count them in too.
        for call in calls.iter().filter(|call| call.kind == "manual") {
            match call.state {
                "talking" => status.talking += 1,
                "ringing" => status.ringing += 1,
                _ => status.offered += 1,
            }
        }
        status.calls = calls;
        let health = self.telephony.trunk_status();
        status.trunks = self
            .trunks
            .iter()
            .map(|(name, channels)| {
                let now = health.iter().find(|trunk| &trunk.name == name);
                crate::control::TrunkView {
                    name: name.clone(),
                    alive: now.is_none_or(|trunk| trunk.alive),
                    registered: now.and_then(|trunk| trunk.registered),
                    active_calls: now.map_or(0, |trunk| trunk.active_calls),
                    channels: *channels,
                }
            })
            .collect();
        if self.trunks.is_empty() {
            status.problem = Some("no trunk is configured: add [[trunks]] to appliance.toml".to_string());
        } else if status.trunks.iter().all(|trunk| !trunk.alive) {
            status.problem = Some(
                "no trunk answers its health check: check the carrier link and the trunk addresses in appliance.toml"
                    .to_string(),
            );
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
            unsaved: std::collections::HashSet::new(),
            saved_early: std::collections::HashSet::new(),
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
            if Some(*batch_id) == except || !run.takes(agent_id) {
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
    /// Hold audio toward a waiting customer: the task's hold music once its file is here,
    /// otherwise the box's own.
    fn hold(&mut self, call: CallId, batch_id: u64) {
        let music = self.tasks.get(&batch_id).and_then(|run| run.extras.hold_music);
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

    fn drain_actions(&mut self) {
        loop {
            let now = self.now();
            let mut acted = false;
            let batch_ids: Vec<u64> = self.tasks.keys().copied().collect();
            // Dials are gathered per task and placed together: one store transaction for a
            // wave of numbers instead of one disk flush per call.
            let mut dials: BTreeMap<u64, Vec<CallKey>> = BTreeMap::new();
            for batch_id in batch_ids {
                let Some(run) = self.tasks.get_mut(&batch_id) else { continue };
                let Some(action) = run.dialer.poll_action(now) else { continue };
                acted = true;
                match action {
                    Action::Dial { call } => dials.entry(batch_id).or_default().push(call),
                    Action::Route { call, agent } => self.route(batch_id, call, agent),
                    Action::Drop { call } => {
                        if let Some(call_id) = self.by_key.get(&(batch_id, call)) {
                            tracing::info!(batch_id, call, "queue timeout: call dropped");
                            self.telephony.hangup(*call_id);
                        }
                    }
                }
            }
            for (batch_id, keys) in dials {
                self.dial_many(batch_id, keys);
            }
            if !acted {
                return;
            }
        }
    }

    fn free_trunk(&self, caller: &str) -> Option<String> {
        self.trunks.iter().filter(|(name, _)| caller.is_empty() || name == caller).find_map(|(name, channels)| {
            let in_use = self.calls.values().filter(|call| call.trunk == *name).count() as u32;
            (in_use < *channels).then(|| name.clone())
        })
    }

    /// Places the cores' dials of one task: as many as the task's lines have free channels,
    /// numbers taken in one transaction; the rest are told "no number" so the core retries.
    fn dial_many(&mut self, batch_id: u64, keys: Vec<CallKey>) {
        let now = self.now();
        let Some(run) = self.tasks.get_mut(&batch_id) else { return };
        let (ring_seconds, caller, stopping) = (run.params.ring_seconds, run.extras.caller.clone(), run.stopping);
        let free: usize = self
            .trunks
            .iter()
            .filter(|(name, _)| caller.is_empty() || *name == caller)
            .map(|(name, channels)| {
                let in_use = self.calls.values().filter(|call| call.trunk == *name).count() as u32;
                channels.saturating_sub(in_use) as usize
            })
            .sum();
        let wanted = if stopping { 0 } else { keys.len().min(free) };
        let claimed = if wanted == 0 {
            Vec::new()
        } else {
            match self.store.claim_next_numbers(batch_id, wanted) {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, batch_id, "cannot take numbers");
                    Vec::new()
                }
            }
        };
        let mut claimed = claimed.into_iter();
        for key in keys {
            let next = claimed.next();
            let trunk = next.as_ref().and_then(|_| self.free_trunk(&caller));
            let (Some(number), Some(trunk)) = (next, trunk) else {
                if let Some(run) = self.tasks.get_mut(&batch_id) {
                    run.dialer.call_no_number(now, key);
                }
                continue;
            };
            let call_id = CallId(self.next_call);
            self.next_call += 1;
            tracing::debug!(batch_id, attempt = number.attempt_id, call = call_id.0, %trunk, "dialing");
            self.calls.insert(
                call_id,
                CallInfo {
                    batch_id,
                    key,
                    attempt_id: number.attempt_id,
                    trunk: trunk.clone(),
                    answered: false,
                    answered_at: None,
                    agent: None,
                    bridged: false,
                    manual: None,
                    phone_missed: false,
                    phone: number.phone.clone(),
                    dialed_at: Instant::now(),
                },
            );
            self.by_key.insert((batch_id, key), call_id);
            self.telephony.dial(DialRequest {
                call: call_id,
                caller_id: caller_id_of(&trunk),
                trunk,
                number: number.phone,
                ring_timeout: Duration::from_secs(u64::from(ring_seconds)),
            });
        }
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
        let auto_answer = self.tasks.get(&batch_id).is_none_or(|run| run.extras.answer_mode != "ring");
        self.telephony.bridge(call_id, &extension, AGENT_RING_TIMEOUT, auto_answer);
    }

    /// Customer and agent are both on the line (the later of the answer and the agent's
    /// pick-up): the popup, the agent's duty to save a record, the dialer core and the store
    /// learn of the conversation.
    fn connect(&mut self, call: CallId) {
        let now = self.now();
        let Some(info) = self.calls.get(&call) else { return };
        let Some(agent_id) = info.agent else { return };
        let (batch_id, key, attempt_id) = (info.batch_id, info.key, info.attempt_id);
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
                if let Some(run) = self.tasks.get_mut(&batch_id) {
                    run.dialer.call_bridged(now, key, agent_id);
                }
                // The popup first, the disk after: the agent is talking already.
                self.send_popup(agent_id, attempt_id, false);
            }
        }
        self.store.note_bridge(attempt_id, &username);
        self.writer.write(move |store| {
            if let Err(error) = store.mark_answered_and_bridged(attempt_id, answered_at, &username) {
                tracing::error!(%error, attempt_id, "cannot record the bridge");
            }
        });
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
                info.answered_at = Some(unix_now());
                let batch_id = info.batch_id;
                if info.manual.is_some() {
                    // An agent's own call: the agent's phone was offered it at the dial. Connected
                    // now if the agent is on already, else when the phone picks up.
                    if info.bridged {
                        self.connect(call);
                    }
                    return;
                }
                if let Some(run) = self.tasks.get_mut(&info.batch_id) {
                    run.dialer.call_answered(now, info.key);
                }
                // Route at once if an agent is free; hold audio only for a call that waits.
                self.drain_actions();
                if self.calls.get(&call).is_some_and(|info| info.agent.is_none()) {
                    self.hold(call, batch_id);
                }
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
                // An agent's own call still ringing: the agent listens to the early media.
                if info.answered {
                    self.connect(call);
                }
            }
            LineEvent::AgentMissed { call, extension } => {
                let Some(info) = self.calls.get_mut(&call) else { return };
                if info.manual.is_some() {
                    // The agent's phone did not take their own call: the customer is let go.
                    // The agent keeps the call until it has ended, so the end frees them.
                    info.phone_missed = true;
                    tracing::warn!(call = call.0, %extension, "the agent's phone did not take their own call; hanging up");
                    self.telephony.hangup(call);
                    return;
                }
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
                    self.desk.push(agent_id, DeskEvent::State { state: AgentState::Away });
                }
                self.announce(agent_id, was_ready, Some(batch_id));
                // Back in the queue: the customer hears hold music, not silence, until the
                // next agent takes the call or the queue timeout lets it go.
                self.hold(call, batch_id);
            }
            LineEvent::Ended { call, outcome, hangup_side, recording } => {
                let Some(info) = self.calls.remove(&call) else { return };
                self.by_key.remove(&(info.batch_id, info.key));
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
                    let was_ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
                    if let Some(slot) = self.agents.get_mut(&agent_id)
                        && slot.call == Some(call)
                    {
                        slot.call = None;
                        slot.saved_early.remove(&info.attempt_id);
                        if connected {
                            slot.wrap_up = !slot.unsaved.is_empty();
                        }
                    }
                    let ready = self.agents.get(&agent_id).is_some_and(AgentSlot::ready);
                    if info.manual.is_some() {
                        // No core knew of this call: every core hears of the agent afresh.
                        self.announce(agent_id, was_ready, None);
                    } else {
                        if let Some(run) = self.tasks.get_mut(&info.batch_id) {
                            if !ready {
                                // After-call work, or a state change during the call:
                                // reported before call_ended, as the core asks.
                                run.dialer.agent_unavailable(now, agent_id);
                            }
                            run.dialer.call_ended(now, info.key);
                        }
                        self.announce(agent_id, was_ready, Some(info.batch_id));
                    }
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
