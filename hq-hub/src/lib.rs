//! HQ hub (总控): the console where HQ sets up projects, imports call lists from xlsx and
//! dispatches them to sites, and the sync server sites report back to.
//!
//! - [`store`]: every SQL statement (SQLite now, PostgreSQL later behind the same API); also
//!   the [`sync_link::HubStore`] the sync server drives.
//! - [`import`]: xlsx → good rows + a report of bad ones; [`phone`]: number normalisation.
//! - `web`: the axum console (Simplified Chinese by default, English switchable) and the
//!   JSON API under `/api`.
//!
//! Drive it with [`start`] (binds both listeners, returns a [`Hub`]) and a cancellation
//! token; create the first admin with [`init_admin`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod import;
pub mod phone;
pub mod store;
