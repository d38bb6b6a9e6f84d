//! The agent desk: agents, every route behind [`AgentUser`](super::AgentUser) (with the
//! permission module it needs, for records, callbacks and customers).
//!
//! - [`pages`]: the desk and the agent's other server-rendered pages.
//! - [`api`]: the JSON API the desk's script, the demo's simulated agents and the end-to-end
//!   tests call.

pub mod api;
pub mod pages;
