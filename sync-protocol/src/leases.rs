//! The shared pool's messages (共享批次): HQ leases blocks of a shared batch's numbers to
//! sites, a site asks for more and gives back what it did not dial, HQ recalls. Kept apart
//! from `messages` only for size; the enums that carry them are there.

use serde::{Deserialize, Serialize};

use crate::messages::CustomerRow;

/// A lease of a shared batch's pool (共享批次): the rows are the site's alone until it
/// returns them. Rows arrive only in leases: a pooled batch's manifest carries no rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub batch_id: u64,
    /// HQ's id of the lease, unique across batches; 0 when HQ had nothing to lease (an
    /// answer to a request, carrying no rows).
    pub lease_id: u64,
    /// The [`LeaseRequest::request_id`] this answers; 0 when HQ leased unasked.
    pub request_id: u64,
    pub granted_at: i64,
    /// After this (unix seconds) the site dials none of the lease's rows and returns the rest.
    pub expires_at: i64,
    /// The site asks for more once it holds fewer undialed rows of the batch than this.
    pub refill_below: u64,
    pub rows: Vec<CustomerRow>,
}

/// The site's ask for another lease of a pooled batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub batch_id: u64,
    /// Per-batch counter of the site's requests; HQ answers each once.
    pub request_id: u64,
    /// Undialed rows of the batch the site still holds.
    pub held: u64,
    /// Numbers of the batch the site dialed in the last hour (its recent rate).
    pub dials_last_hour: u64,
    pub asked_at: i64,
}

/// HQ's recall of a lease or of all of a batch's leases at the site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecall {
    /// HQ's id of the recall, echoed in the returns it causes.
    pub recall_id: u64,
    pub batch_id: u64,
    /// `None`: every lease of the batch, and the site asks for no more of it.
    pub lease_id: Option<u64>,
}

/// A lease given back, expired or recalled: which of its rows the site dialed (or is
/// dialing) and which it returns undialed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseReturn {
    pub batch_id: u64,
    pub lease_id: u64,
    /// The recall that caused it; `None` when the lease expired at the site.
    pub recall_id: Option<u64>,
    /// Row ids the site dialed.
    pub dialed: Vec<u64>,
    /// Row ids the site gives back undialed.
    pub returned: Vec<u64>,
    pub returned_at: i64,
}
