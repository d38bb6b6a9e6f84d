//! The agent desk: agents, every route behind [`AgentUser`](super::AgentUser) (with the
//! permission module it needs, for records, callbacks and customers).
//!
//! - [`pages`]: the desk and the agent's other server-rendered pages.
//! - [`api`]: the JSON API the desk's script, the demo's simulated agents and the end-to-end
//!   tests call.
//! - [`work_api`]: manual dial, callback editing, the callback grace and the desk's assets
//!   (its own [`routes`]); [`words`]: the desk's words in both languages.

pub mod api;
pub mod lists;
pub mod pages;
pub mod words;
pub mod work_api;

pub(crate) use work_api::routes;
