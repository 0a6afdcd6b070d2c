//! Routing workflows: the v1 definition, its compiler, the runner and the
//! decision rules.
//!
//! ```text
//! definition (JSON) ──compile──► Plan (Arc, shared) ──run(input)──► Output + trace
//!                                                             └──decide──► Decision
//! ```
//!
//! Pure apart from the `http` and `wait` steps: no store, no SIP, no admin.
//! Allowed imports: `jsonata-core`, `chrono(-tz)`, `serde_json`, `reqwest`
//! (http steps only), tokio time. Must not import `store`, `sip`, `admin`.

mod compile;
mod decision;
mod expr;
mod http;
mod model;
mod output;
mod plan;
mod run;
mod schedule;
mod split;
mod template;

pub use compile::{compile, Limits, Problem};
pub use decision::{
    decide, decide_without_workflow, Action, AgentDirectory, AgentRef, Decision, Reason,
    ResolvedAgent, Unresolved,
};
pub use http::HttpClient;
pub use output::Output;
pub use plan::Plan;
pub use run::{run, CallInput, Run, RunEnv, RunError, TraceEntry};
