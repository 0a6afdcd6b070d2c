//! inroute: a SIP inbound call router.
//!
//! Carriers' SIP trunks point at it. For each INVITE it finds the organization
//! that owns the called number, runs that organization's routing workflow under
//! a hard deadline, and answers `302` to the chosen AI voice agent or `603`.
//! A side admin port serves the configuration API.
//!
//! # Layout
//!
//! * [`config`]: typed configuration and the layered loader (binds nothing).
//! * [`store`]: every SQL statement, on SQLite or PostgreSQL.
//! * [`admin`]: the HTTP admin API (axum) on its own port.
//! * [`token`]: API token format, hashing and scopes (pure).
//! * [`cli`]: the command line (clap) and the one-shot operator commands.
//! * [`app`]: wiring; the only module that knows every other.
//! * [`demo`]: the `serve --demo` organization.
//! * [`shutdown`]: signal handling and the drain/fast-stop distinction.
//! * [`telemetry`]: tracing subscriber set-up.

pub mod admin;
pub mod app;
pub mod call;
pub mod cli;
pub mod config;
pub mod decision_log;
pub mod demo;
pub mod metrics;
pub mod propagation;
pub mod routing;
pub mod shutdown;
pub mod sip;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod token;
