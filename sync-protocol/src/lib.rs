//! The wire between the HQ hub and a site appliance.
//!
//! This crate defines what travels over the QUIC link and nothing else: the message
//! types ([`Frame`], [`UpEvent`], [`DownEvent`]), the length-prefixed postcard framing with
//! a size cap, the versioned ALPN and hello, and the sans-IO sync session logic (cursors,
//! cumulative acknowledgements, batch manifests). It does no I/O: the tokio/quinn driver
//! lives in `sync-link`, and the stores on either side live in `hq-hub` and `appliance`.
//!
//! Both directions use the same shape: the owner of a datum numbers each change in a log
//! (`(site, epoch, seq)` upward, a per-site `seq` downward), the other side applies each
//! entry idempotently in the same transaction as its cursor, and acknowledges cumulatively.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod enroll;
pub mod framing;
pub mod leases;
pub mod messages;
pub mod quality;
pub mod session;
pub mod v2;
pub mod versions;

pub use messages::*;
pub use versions::{alpn_version, sync_alpns};
