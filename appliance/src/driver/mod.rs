//! The dialer driver: the actor that carries events between the lines, the dialer cores, the
//! store and the agents' desks. It decides nothing itself: pacing and routing are the
//! sans-IO `dialer::Dialer`'s, one per running task.
//!
//! Data flow:
//! - Inbox ([`inbox::DriverMsg`]): agents' state changes and saved records from the web, task
//!   start/stop, extension changes, status queries.
//! - Lines ([`hardware::LineEvent`]): ringing, answered, bridged, agent missed, ended, registrations.
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
//! A task is a project's (S1): one core per running project task, drawing numbers from all
//! its batches by priority. Agents may work several tasks: the site-wide arbiter
//! (`dialer::arbiter`) gives each idle 可回接 agent to one task's core at a time (task
//! priority, then the longest waiting; a task with a customer waiting borrows an idle
//! agent), so the cores together never pace on more agents than are idle. An agent whose
//! call ended is in after-call work (unavailable) until they save the business record.
//!
//! Its parts: [`inbox`] (the messages and views the web sees), `cores` (the running tasks'
//! dialer cores: reconciling with the store, their actions, dialing and routing), `events`
//! (one method per line event), `inbound` (calls customers place to the site's numbers:
//! the last agent, the task's queue or the site's), `manual` (agents' own calls and due callbacks), `agents`
//! (agents' states, records saved, popups, phones), `status` (the lines' live figures) and
//! `writer` (the store writes the driver does not wait for).

pub mod inbox;
pub use typed::TypedRefusal;

mod agents;
mod board;
mod cores;
mod events;
mod inbound;
mod manual;
mod status;
mod typed;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dialer::arbiter::Arbiter;
use dialer::{AgentId, CallKey, Dialer};
use hardware::{CallId, ExtensionConfig, LineEvent, Telephony};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ApplianceConfig;
use crate::desk::{AgentState, Desk};
use crate::store::{Store, TaskExtras, TaskParams};
use inbox::{DriverHandle, DriverMsg};
use writer::Writer;

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
    done: tokio_util::sync::DropGuard,
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
            // No lines to stop: done as soon as the box stops.
            tasks.spawn(async move {
                shutdown.cancelled().await;
                drop(done);
            });
            return (DriverHandle::without_lines(error.to_string()), config.sip_bind);
        }
    };
    let sip_addr = telephony.local_sip_addr();
    tasks.spawn(crate::recordings::keep(
        store.clone(),
        telephony.clone(),
        config.data_dir.join("recordings"),
        config.recordings.clone(),
        shutdown.clone(),
    ));
    let (sender, inbox) = mpsc::unbounded_channel();
    let driver = Driver {
        writer: Writer::spawn(store.clone()),
        store,
        desk,
        telephony,
        trunks: config.trunks.iter().map(|t| (t.name.clone(), t.channels)).collect(),
        origin: Instant::now(),
        tasks: BTreeMap::new(),
        arbiter: Arbiter::new(),
        calls: HashMap::new(),
        by_key: HashMap::new(),
        next_call: 1,
        agents: HashMap::new(),
        told_due: std::collections::HashSet::new(),
        hold_music: HashMap::new(),
        inbound_queue: config.inbound_queue,
    };
    let grace = config.stop_grace;
    tasks.spawn(async move {
        // Dropped when the driver is done: the web and the link stop after the calls.
        let _done = done;
        driver.run(inbox, events, shutdown, grace).await;
    });
    (DriverHandle::new(sender), sip_addr)
}

/// Where a stop (SIGTERM) is: calls finish during the grace, then are hung up and given a
/// few seconds for their hang-ups to complete (so recordings close with valid headers and
/// each attempt is written as it ended, not as "interrupted").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Running,
    Draining { until: Instant },
    HangingUp { until: Instant },
    Done,
}

/// How long hung-up calls get to end on the wire (BYE answered, recording closed).
const HANG_UP_WAIT: Duration = Duration::from_secs(5);

impl Stopping {
    fn deadline(self) -> Option<tokio::time::Instant> {
        match self {
            Stopping::Draining { until } | Stopping::HangingUp { until } => Some(until),
            Stopping::Running | Stopping::Done => None,
        }
    }

    fn next(self, no_calls: bool, now: Instant) -> Stopping {
        match self {
            Stopping::Running => Stopping::Running,
            _ if no_calls => Stopping::Done,
            Stopping::Draining { until } if now >= until => Stopping::HangingUp { until: now + HANG_UP_WAIT },
            Stopping::HangingUp { until } if now >= until => Stopping::Done,
            other => other,
        }
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
    /// When the store last had no number for it (reset by the next number).
    no_number_at: Option<Duration>,
}

/// How long a task that ran out of numbers lets its idle agents go to other tasks before
/// it is given agents again to find out whether numbers came (a new batch): the core's own
/// no-number back-off, so a batch arriving in a started project is dialed within seconds.
const STARVED_FOR: Duration = Duration::from_secs(5);

impl TaskRun {
    fn takes(&self, agent: AgentId) -> bool {
        self.agents.is_empty() || self.agents.contains(&agent)
    }

    /// Out of numbers lately: the arbiter gives its agents to the other tasks.
    fn starved(&self, now: Duration) -> bool {
        self.no_number_at.is_some_and(|at| now.saturating_sub(at) < STARVED_FOR)
    }
}

/// The task of a call that belongs to none (an agent's own call).
const NO_TASK: u64 = u64::MAX;

/// One call on the lines.
struct CallInfo {
    /// The task (project id) whose core placed the call; [`NO_TASK`] for an agent's own.
    task: u64,
    /// The batch of the number dialed.
    batch_id: u64,
    key: CallKey,
    attempt_id: u64,
    trunk: String,
    answered: bool,
    /// When the customer answered (unix seconds), written with the bridge or the end.
    answered_at: Option<i64>,
    /// The agent offered or talking, if any.
    agent: Option<AgentId>,
    /// The agent who owns the number (S4): the call is reserved for them.
    owner: Option<AgentId>,
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
    /// A call the customer placed (呼入): its queue and who it goes to.
    inbound: Option<inbound::InboundCall>,
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
    /// Running tasks by project id.
    tasks: BTreeMap<u64, TaskRun>,
    /// Gives each idle 可回接 agent to one task's core at a time.
    arbiter: Arbiter,
    calls: HashMap<CallId, CallInfo>,
    by_key: HashMap<(u64, CallKey), CallId>,
    next_call: u64,
    agents: HashMap<AgentId, AgentSlot>,
    /// Callbacks whose agent was told they are due but was not free.
    told_due: std::collections::HashSet<u64>,
    /// Tasks' hold music, decoded once (by voice id, with when it was loaded: HQ may replace
    /// or delete a file, so an entry is looked up again after a minute).
    hold_music: HashMap<u64, (Instant, hardware::HoldAudio)>,
    /// How long an inbound call waits in the site-wide queue.
    inbound_queue: Duration,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The caller id a line presents: its name when that is a number (the site names its
/// lines by their caller numbers), else none and the carrier's default applies.
fn caller_id_of(trunk: &str) -> String {
    if !trunk.is_empty() && trunk.bytes().all(|b| b.is_ascii_digit()) { trunk.to_string() } else { String::new() }
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
        grace: Duration,
    ) {
        self.reconcile_tasks();
        let mut stop = Stopping::Running;
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
            let deadline = stop.deadline().unwrap_or(wake);
            tokio::select! {
                _ = shutdown.cancelled(), if stop == Stopping::Running => {
                    stop = Stopping::Draining { until: Instant::now() + grace };
                    self.stop_dialing();
                }
                _ = tokio::time::sleep_until(deadline), if stop != Stopping::Running => {}
                message = inbox.recv() => match message {
                    Some(message) if stop != Stopping::Running => self.on_message_stopping(message),
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
                // A stopping box re-reads no task (that would restart the dialing) and
                // places no callback.
                _ = reconcile.tick(), if stop == Stopping::Running => self.reconcile_tasks(),
                _ = callbacks.tick(), if stop == Stopping::Running => {
                    self.run_due_callbacks();
                    self.tick_inbound();
                    self.publish_agent_counts();
                }
            }
            // HQ's wall sees every change (the store ignores an unchanged board).
            self.publish_board();
            match stop.next(self.calls.is_empty(), Instant::now()) {
                Stopping::Done => break,
                Stopping::HangingUp { until } if !matches!(stop, Stopping::HangingUp { .. }) => {
                    tracing::warn!(calls = self.calls.len(), "the stop's grace is over; hanging up the calls left");
                    for call in self.calls.keys() {
                        self.telephony.hangup(*call);
                    }
                    stop = Stopping::HangingUp { until };
                }
                next => stop = next,
            }
        }
        if !self.calls.is_empty() {
            tracing::error!(calls = self.calls.len(), "calls did not end after their hang-up; the next start closes them");
        }
        // Whatever is queued is written before the driver goes.
        self.writer.flush();
        tracing::info!("the lines have stopped");
    }

    /// While the box stops: status and record saves as usual, no new call.
    fn on_message_stopping(&mut self, message: DriverMsg) {
        match message {
            DriverMsg::ManualDial { reply, .. } => {
                let _ = reply.send(Err("the box is stopping; calls resume after its restart".to_string()));
            }
            DriverMsg::TasksChanged | DriverMsg::ExtensionsChanged => {}
            other => self.on_message(other),
        }
    }

    /// The stop's first step: every task dials no more; calls in progress go on.
    fn stop_dialing(&mut self) {
        tracing::info!(calls = self.calls.len(), "stopping: no new calls; the calls in progress may finish");
        for run in self.tasks.values_mut() {
            run.stopping = true;
        }
    }

    fn on_message(&mut self, message: DriverMsg) {
        match message {
            DriverMsg::AgentState { agent } => self.on_agent_state(agent),
            DriverMsg::TasksChanged => self.reconcile_tasks(),
            DriverMsg::RecordSaved { agent_id, attempt_id } => self.on_record_saved(agent_id, attempt_id),
            DriverMsg::ExtensionsChanged => self.on_extensions_changed(),
            DriverMsg::Status { reply } => {
                let _ = reply.send(self.status());
            }
            DriverMsg::ManualDial { agent, target, reply } => {
                let _ = reply.send(self.manual_dial(agent, target));
            }
            DriverMsg::TypedDial { agent, project_id, phone, reply } => {
                let _ = reply.send(self.typed_dial(agent, project_id, &phone));
            }
        }
    }
}
