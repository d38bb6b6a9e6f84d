//! The driver's inbox: the messages the web sends to the dialer driver ([`DriverMsg`],
//! through a [`DriverHandle`]), and what the driver reports back (the lines' live figures,
//! [`LineStatus`], with each call and trunk; an agent's own call once it dials).
//!
//! Kept apart from the driver's workings so that the web only knows a channel: the web
//! never touches telephony, and the driver never parses a request.

use tokio::sync::{mpsc, oneshot};

use crate::desk::AgentLive;

/// The dialer driver's inbox.
#[derive(Debug)]
pub enum DriverMsg {
    /// An agent changed work state (the desk already holds the new state).
    AgentState { agent: AgentLive },
    /// A task was started, restarted with new parameters, or stopped: re-read the store.
    TasksChanged,
    /// An agent saved a business record: their after-call work may be over.
    RecordSaved { agent_id: u64, attempt_id: u64 },
    /// Extensions were added or changed: push them to the registrar.
    ExtensionsChanged,
    /// Report the lines' live figures.
    Status { reply: oneshot::Sender<LineStatus> },
    /// An agent's own call: one-click, call back now, or a callback from the list.
    ManualDial { agent: AgentLive, target: ManualTarget, reply: oneshot::Sender<Result<ManualStarted, String>> },
    /// 手动外呼: a number the agent typed (see `driver::typed`).
    TypedDial {
        agent: AgentLive,
        project_id: Option<u64>,
        phone: String,
        reply: oneshot::Sender<Result<ManualStarted, super::TypedRefusal>>,
    },
}

/// What an agent's own call dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManualTarget {
    /// 一键外呼: the next number of a one-click project.
    OneClick { project_id: u64 },
    /// 当下回访: the customer of one of the agent's calls, now.
    CallBackNow { attempt_id: u64 },
    /// A callback from the agent's list.
    Callback { callback_id: u64 },
}

/// An agent's own call that is ringing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ManualStarted {
    pub attempt_id: u64,
    /// First three and last four digits only.
    pub phone: String,
}

/// One call on the lines as the queue monitor shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LiveCall {
    pub attempt_id: u64,
    pub batch_id: u64,
    /// ringing, queued, offered or talking.
    pub state: &'static str,
    /// Always first three and last four digits: the monitor is a wallboard.
    pub phone: String,
    pub agent: Option<String>,
    /// Seconds since the call was dialed.
    pub seconds: u64,
    /// predictive, manual (an agent's own call) or inbound (the customer called, 呼入).
    pub kind: &'static str,
}

/// One trunk (or FXO line) as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TrunkView {
    pub name: String,
    /// False once a health check (OPTIONS) or an INVITE went unanswered, until one answers.
    pub alive: bool,
    /// `None` when the trunk does not register.
    pub registered: Option<bool>,
    pub active_calls: u32,
    pub channels: u32,
}

/// Live figures of the lines, for the status page and the panel.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LineStatus {
    /// Dialed, not answered yet.
    pub ringing: u32,
    /// Answered, waiting for an agent (hearing hold audio).
    pub queued: u32,
    /// Offered to an agent's phone, which is ringing.
    pub offered: u32,
    /// Customer and agent talking.
    pub talking: u32,
    /// Extensions whose phones are registered now.
    pub registered_extensions: Vec<String>,
    /// Tasks the driver is dialing, by project id (a task is a project's, S1).
    pub running_tasks: Vec<u64>,
    /// Agents 可回接 with no call and no record to save: the site's idle agents.
    pub agents_idle: u32,
    /// Idle agents as the tasks' cores count them, summed over the tasks: never more than
    /// `agents_idle`, since the arbiter gives each idle agent to one task at a time.
    pub agents_counted: u32,
    /// Why the lines are not working, if they are not.
    pub problem: Option<String>,
    /// Every call on the lines.
    pub calls: Vec<LiveCall>,
    /// Every trunk and FXO line, in configuration order.
    pub trunks: Vec<TrunkView>,
}

/// The web's handle on the driver. Sending never blocks; when the driver is not running
/// (telephony failed to start), messages are dropped and status says why.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    sender: Option<mpsc::UnboundedSender<DriverMsg>>,
    problem: Option<String>,
}

impl DriverHandle {
    /// A handle on a running driver.
    pub fn new(sender: mpsc::UnboundedSender<DriverMsg>) -> DriverHandle {
        DriverHandle { sender: Some(sender), problem: None }
    }

    /// A handle for a box whose lines are down; `problem` is shown on the status page.
    pub fn without_lines(problem: String) -> DriverHandle {
        DriverHandle { sender: None, problem: Some(problem) }
    }

    /// Whether the lines started (the SIP socket is bound and the driver runs).
    pub fn lines_running(&self) -> bool {
        self.sender.as_ref().is_some_and(|sender| !sender.is_closed())
    }

    /// Asks the driver to place an agent's own call; answers once the number is dialing.
    pub async fn manual_dial(&self, agent: AgentLive, target: ManualTarget) -> Result<ManualStarted, String> {
        let Some(sender) = &self.sender else {
            return Err(self.problem.clone().unwrap_or_else(|| "the lines are down".to_string()));
        };
        let (reply, answer) = oneshot::channel();
        if sender.send(DriverMsg::ManualDial { agent, target, reply }).is_err() {
            return Err("the dialer has stopped".to_string());
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
            Ok(Ok(result)) => result,
            _ => Err("the dialer did not answer within 5 s".to_string()),
        }
    }

    /// Asks the driver to dial a number the agent typed; answers once it is dialing.
    pub async fn typed_dial(&self, agent: AgentLive, project_id: Option<u64>, phone: String) -> Result<ManualStarted, super::TypedRefusal> {
        let down = |problem: &str| super::TypedRefusal::LinesDown(problem.to_string());
        let Some(sender) = &self.sender else {
            return Err(down(self.problem.as_deref().unwrap_or("the lines are down")));
        };
        let (reply, answer) = oneshot::channel();
        if sender.send(DriverMsg::TypedDial { agent, project_id, phone, reply }).is_err() {
            return Err(down("the dialer has stopped"));
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
            Ok(Ok(result)) => result,
            _ => Err(down("the dialer did not answer within 5 s")),
        }
    }

    pub fn send(&self, message: DriverMsg) {
        if let Some(sender) = &self.sender {
            // A closed inbox means the driver is shutting down; nothing left to tell it.
            let _ = sender.send(message);
        }
    }

    /// The lines' figures, or the reason there are none.
    pub async fn status(&self) -> LineStatus {
        let down = |problem: String| LineStatus { problem: Some(problem), ..LineStatus::default() };
        let Some(sender) = &self.sender else {
            return down(self.problem.clone().unwrap_or_default());
        };
        let (reply, answer) = oneshot::channel();
        if sender.send(DriverMsg::Status { reply }).is_err() {
            return down("the dialer has stopped".to_string());
        }
        match tokio::time::timeout(std::time::Duration::from_secs(2), answer).await {
            Ok(Ok(status)) => status,
            _ => down("the dialer did not answer within 2 s".to_string()),
        }
    }
}
