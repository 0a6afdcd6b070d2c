//! SIP: the wire format, server transactions and transports of a redirect
//! server (RFC 3261 UAS that only answers 1xx and 3xx–6xx).
//!
//! * [`parse`], [`header`], [`uri`], [`response`], [`transaction`], [`request`]:
//!   pure code over bytes and state machines; no tokio I/O.
//! * [`endpoint`]: the transaction table and timers; [`transport`]: sockets.
//!
//! The SIP side asks the rest of the daemon one question through
//! [`CallHandler`]: what to answer to this INVITE.
//! Allowed imports: std, tokio (endpoint only), `serde_json` (call facts).
//! Must not import `routing`, `store`, `admin` or `call`.
//! Why this stack is our own: `docs/decisions/0003-own-sip-stack.md`.

pub mod backlog;
pub mod endpoint;
pub mod framing;
pub mod header;
pub mod limiter;
pub(crate) mod linger;
pub mod parse;
pub mod peer;
pub mod request;
pub mod response;
pub mod transaction;
pub mod transport;
pub mod uri;

use std::future::Future;
use std::net::IpAddr;

pub use request::CallFacts;

/// The answer to an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

/// What the SIP side needs from the call-routing core.
pub trait CallHandler: Send + Sync + 'static {
    /// Whether `ip` belongs to any trunk (cheap; used to drop unknown
    /// sources before creating any state when configured to).
    fn knows_source(&self, ip: IpAddr) -> bool;

    /// Decides the final answer to an INVITE. Dropping the future cancels it.
    fn route(&self, facts: CallFacts) -> impl Future<Output = Answer> + Send;
}
