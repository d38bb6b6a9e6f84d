//! Sans-IO SIP for Outpost: messages, SDP, digest authentication and transaction helpers.
//!
//! This crate does no I/O and owns no clock: callers hand it bytes and the current time and
//! get back parsed values, bytes to send and what a timer says to do. The tokio driver that
//! moves packets lives in `hardware`.
//!
//! Key pieces:
//! - [`message`]: [`message::parse`] turns a datagram into a [`message::Message`]
//!   (requests, responses, compact header names, multi-value Via, Content-Length, body);
//!   [`message::Request::to_bytes`] / [`message::Response::to_bytes`] serialize.
//! - [`sdp`]: offer/answer for PCMU, PCMA and telephone-event.
//! - [`auth`]: digest auth (MD5, SHA-256, `qop=auth`) for both the client answering a
//!   401/407 and the registrar challenging and verifying.
//! - [`transaction`]: client and server transactions as sans-IO state machines (INVITE with
//!   CANCEL and ACKs, non-INVITE, the server table; RFC 3261 timers A to K), and branch ids,
//!   tags and Call-IDs drawn from a generator the caller passes in (no OS randomness here).
//!
//! Malformed input yields an error naming the defect; no input makes this crate panic (a
//! property test feeds it random bytes).
//!
//! # Why a project-own core (decision record)
//!
//! `ARCHITECTURE.md` asks to evaluate rsipstack first and ezk-sip second. Both were read
//! (docs.rs, rsipstack 0.7/0.8 and ezk-sip-core/-ua 0.8):
//! - Neither is sans-IO: rsipstack's endpoint, transaction and dialog layers run on tokio
//!   tasks with their own transports and timers, and ezk-sip-core's transaction layer is
//!   tokio-bound as well. Call control here must stay a deterministic state machine driven by
//!   the caller's clock, and the B2BUA needs to own its single UDP socket.
//! - rsipstack pulls rand 0.10, md-5 0.11 and sha2 0.11 (the workspace pins 0.9/0.10/0.10),
//!   hickory-resolver and websocket stacks the box does not need, breaks its API often
//!   (0.5 -> 0.8 within months) and documents about 8 % of its items; ezk documents about 18 %.
//! - What the appliance needs is narrow (UAC INVITE/CANCEL/BYE, a registrar, digest, G.711
//!   SDP), small enough to own and test against real peers (SIPp) directly.
//!
//! So this crate is the project's own sans-IO core, as the architecture allows; the interop
//! suite in `hardware/tests` against SIPp decides whether it is good enough.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod message;
pub mod peer;
pub mod sdp;
pub mod transaction;

pub use message::{
    CSeq, Header, Headers, Message, Method, NameAddr, ParseError, Request, Response, SipUri, Via,
    parse,
};
