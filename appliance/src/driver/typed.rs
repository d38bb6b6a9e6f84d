//! 坐席手动外呼 (manual 3.2.1.1, A11): a number the agent types on the desk. It is an entry
//! point of its own beside the task runner and the one-click path: the store finds the
//! number among the agent's projects' customers (the popup and the business record need
//! its project), checks the black list, the project's calling windows and that the number is
//! on no other call, and writes a `manual` attempt that HQ's data filter does not count; the
//! driver then places it as any other agent's own call (`place_manual`), on the line the
//! agent chose in the desk settings.

use super::Driver;
use super::inbox::ManualStarted;
use crate::desk::{AgentLive, AgentState};
use crate::store::TypedDialError;

/// Why a typed number was not dialed; the web words each in the UI's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedRefusal {
    NotSignedIn,
    OnCall,
    PhoneUnregistered(String),
    NoCaller,
    NotYours,
    BlackListed,
    OutsideWindows { now: String, windows: String },
    BusyNumber,
    LinesDown(String),
}

impl Driver {
    /// Places a number the agent typed; answers once it is dialing.
    pub(super) fn typed_dial(&mut self, agent: AgentLive, project_id: Option<u64>, phone: &str) -> Result<ManualStarted, TypedRefusal> {
        if !matches!(agent.state, AgentState::Available | AgentState::OneClickOnly) {
            return Err(TypedRefusal::NotSignedIn);
        }
        if self.agents.get(&agent.agent_id).is_some_and(|slot| slot.call.is_some()) {
            return Err(TypedRefusal::OnCall);
        }
        // The agent's phone is rung at the dial, as for one-click.
        if !self.telephony.registered_extensions().contains(&agent.extension) {
            return Err(TypedRefusal::PhoneUnregistered(agent.extension));
        }
        let claim = self
            .store
            .claim_typed_number(project_id, phone, agent.agent_id, &agent.username, super::unix_now())
            .map_err(|error| match error {
                TypedDialError::NoCaller => TypedRefusal::NoCaller,
                TypedDialError::NotYours => TypedRefusal::NotYours,
                TypedDialError::BlackListed => TypedRefusal::BlackListed,
                TypedDialError::OutsideWindows { now, windows } => TypedRefusal::OutsideWindows { now, windows },
                TypedDialError::BusyNumber => TypedRefusal::BusyNumber,
                TypedDialError::Db(error) => {
                    tracing::error!(%error, "cannot take a typed number");
                    TypedRefusal::LinesDown(error.to_string())
                }
            })?;
        Ok(self.place_manual(agent, claim))
    }
}
