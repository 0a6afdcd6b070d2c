//! Daemon configuration: the typed [`Config`] and the layered loader.
//!
//! Layers, lowest first: built-in defaults < the TOML file (`config/inroute.toml`
//! or `--config FILE`) < environment `INROUTE__SECTION__KEY` < CLI overrides.
//! Unknown keys are errors, and every problem is reported in one go. Loading
//! binds nothing, so `inroute check-config` runs exactly this code and exits.
//!
//! Allowed imports: std, `config`, `serde`. Library code never reads the process
//! environment itself: the caller passes the variables in.

mod load;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use load::{load, ConfigError, Sources};

/// The whole configuration. Every field has a default, documented in
/// `config/inroute.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub admin: AdminConfig,
    pub database: DatabaseConfig,
    pub decisions: DecisionsConfig,
    pub log: LogConfig,
    pub propagation: PropagationConfig,
    pub redirect: RedirectConfig,
    pub routing: RoutingConfig,
    pub shutdown: ShutdownConfig,
    pub sip: SipConfig,
}

/// SIP listeners and protocol limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP listen addresses (`[]` disables UDP; port 0 picks a free port).
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses (`[]`: TLS off); needs `tls_cert` and `tls_key`.
    pub tls: Vec<SocketAddr>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<std::path::PathBuf>,
    /// A TLS handshake not finished within this time closes the connection.
    pub tls_handshake_timeout_ms: u64,
    /// `reject` answers 403 to sources that belong to no trunk; `drop` stays silent.
    pub unknown_source: UnknownSource,
    /// INVITE transactions alive (routing, answered, or lingering for
    /// retransmissions) before new INVITEs get 503.
    pub max_transactions: usize,
    /// INVITEs received and not yet answered with a final response; past
    /// this the daemon is behind and new INVITEs get 503 + Retry-After at
    /// once, before any routing work.
    pub max_pending_invites: usize,
    /// When a UDP socket's kernel receive queue is this full (percent of its
    /// buffer; 0 disables), the daemon is behind: new INVITEs get 503 +
    /// Retry-After at once rather than wait until datagrams are dropped.
    pub udp_shed_queue_percent: u32,
    /// Largest message accepted on a stream (and read from a datagram).
    pub max_message_bytes: usize,
    /// Kernel receive buffer of each UDP socket (SO_RCVBUF, capped by the
    /// kernel at net.core.rmem_max); 0 keeps the kernel's default. Larger
    /// absorbs longer bursts, at the price of queueing delay under overload.
    pub udp_receive_buffer_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// RFC 3261 timers T1, T2, T4 (milliseconds).
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// A TCP connection with no complete message for this long is closed.
    pub tcp_idle_timeout_ms: u64,
    /// A new TCP/TLS connection must send its first byte within this time.
    pub tcp_first_byte_timeout_ms: u64,
    /// A message, once its first byte arrived, must be complete within this time.
    pub tcp_message_timeout_ms: u64,
    /// Open TCP/TLS connections in all, and from one address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Requests per second (and burst) allowed from one source that is not a trunk; 0 disables.
    pub flood_rate: f64,
    pub flood_burst: f64,
    /// Requests per second (and burst) allowed from one trunk address.
    pub flood_trunk_rate: f64,
    pub flood_trunk_burst: f64,
    /// Buckets of the per-source limiter (its memory is fixed: 12 bytes each, twice).
    pub flood_slots: usize,
    /// A source over its budget is logged at most once per this interval.
    pub flood_log_interval_ms: u64,
    /// Requests whose User-Agent contains one of these (case-insensitive) are dropped.
    pub scanner_user_agents: Vec<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        let any = SocketAddr::from(([0, 0, 0, 0], 5060));
        Self {
            udp: vec![any],
            tcp: vec![any],
            tls: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: 5_000,
            unknown_source: UnknownSource::Reject,
            max_transactions: 100_000,
            max_pending_invites: 1_000,
            udp_shed_queue_percent: 75,
            max_message_bytes: 65_535,
            udp_receive_buffer_bytes: 0,
            max_headers: 100,
            t1_ms: 500,
            t2_ms: 4_000,
            t4_ms: 5_000,
            tcp_idle_timeout_ms: 120_000,
            tcp_first_byte_timeout_ms: 5_000,
            tcp_message_timeout_ms: 10_000,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            flood_rate: 50.0,
            flood_burst: 100.0,
            flood_trunk_rate: 20_000.0,
            flood_trunk_burst: 40_000.0,
            flood_slots: 65_536,
            flood_log_interval_ms: 10_000,
            scanner_user_agents: [
                "friendly-scanner",
                "sipvicious",
                "sipcli",
                "VaxSIPUserAgent",
                "sip-scan",
                "sundayddr",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// What to do with requests from addresses that belong to no trunk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownSource {
    Reject,
    Drop,
}

/// Keeping several instances' snapshots in step (PostgreSQL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PropagationConfig {
    /// How often change counters are compared to repair missed notifications.
    pub reconcile_interval_ms: u64,
}

impl Default for PropagationConfig {
    fn default() -> Self {
        Self {
            reconcile_interval_ms: 5_000,
        }
    }
}

/// The 302's Contact and what rides in it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedirectConfig {
    /// Host of `sip:<agent_id>@<host>` Contacts for agents without a `sip_uri`.
    pub agent_domain: String,
    /// `initial_context`/`custom_metadata` ride inline only while the 302 stays under this size.
    pub max_response_bytes: usize,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        Self {
            agent_domain: "agents.invalid".to_owned(),
            max_response_bytes: 1_300,
        }
    }
}

/// The admin HTTP API (side port).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin API; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger bodies get 413 before being read.
    pub body_limit_bytes: usize,
    /// A request that takes longer is answered 503.
    pub request_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            request_timeout_ms: 10_000,
        }
    }
}

/// Where configuration and decision records are stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created on first run) or `postgres://USER@HOST:PORT/DB`.
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/inroute.db".to_owned(),
            max_connections: 8,
            acquire_timeout_ms: 3_000,
        }
    }
}

/// The decision log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionsConfig {
    /// Records waiting to be written before new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Records per database write.
    pub batch_size: usize,
    /// How long the writer gathers records after the first one before it
    /// writes them (milliseconds; one transaction per batch).
    pub flush_interval_ms: u64,
    /// Recent decisions kept in memory for lookup by id before they land.
    pub recent_capacity: usize,
    /// How long a decision stays in memory (seconds).
    pub recent_ttl_s: u64,
    /// Decisions older than this are purged.
    pub retention_days: u32,
    /// How often the purge runs (seconds).
    pub purge_interval_s: u64,
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            batch_size: 500,
            flush_interval_ms: 50,
            recent_capacity: 10_000,
            recent_ttl_s: 300,
            retention_days: 7,
            purge_interval_s: 3_600,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human) or `json` (one object per line).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `inroute=debug,sqlx=warn`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Routing workflows: deadlines and the limits that keep a bad definition harmless.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Hard deadline of a workflow run; past it the fallback applies.
    pub timeout_ms: u64,
    /// Largest per-organization deadline (`timeout_ms` in a definition).
    pub max_timeout_ms: u64,
    /// Most steps a definition may have.
    pub max_steps: usize,
    /// Longest expression between `{{` and `}}`, in bytes.
    pub max_expression_length: usize,
    /// CPU time one expression evaluation may take.
    pub expression_timeout_ms: u64,
    /// Default timeout of an `http` step (always bounded by the deadline).
    pub http_timeout_ms: u64,
    /// Largest response body an `http` step reads.
    pub http_max_body_bytes: usize,
    /// Workflow runs in flight before INVITEs get 503; 0 sizes it to the machine.
    pub max_concurrent: usize,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 3_000,
            max_timeout_ms: 10_000,
            max_steps: 200,
            max_expression_length: 4_096,
            expression_timeout_ms: 50,
            http_timeout_ms: 1_000,
            http_max_body_bytes: 256 * 1024,
            max_concurrent: 0,
        }
    }
}

impl RoutingConfig {
    /// `max_concurrent`, with 0 meaning 256 runs per CPU core.
    pub fn concurrency(&self) -> usize {
        if self.max_concurrent > 0 {
            return self.max_concurrent;
        }
        256 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    }

    /// The compiler's limits.
    pub fn limits(&self) -> crate::routing::Limits {
        crate::routing::Limits {
            default_timeout_ms: self.timeout_ms,
            max_timeout_ms: self.max_timeout_ms,
            max_steps: self.max_steps,
            max_expression_length: self.max_expression_length,
            http_timeout_ms: self.http_timeout_ms,
        }
    }
}

/// Shutdown behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long SIGTERM lets work in flight finish before stopping anyway.
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace_ms: 10_000 }
    }
}

/// Which database backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl DatabaseConfig {
    /// The backend named by `url`, if it is one we support.
    pub fn backend(&self) -> Option<Backend> {
        if self.url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if self.url.starts_with("postgres://") || self.url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

impl Config {
    /// Cross-field and range checks, every problem collected.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: &str| {
            if !ok {
                problems.push(msg.to_owned());
            }
        };
        check(
            self.database.backend().is_some(),
            "database.url: must start with `sqlite:` or `postgres://`",
        );
        check(
            self.database.max_connections > 0,
            "database.max_connections: must be at least 1",
        );
        check(
            self.database.acquire_timeout_ms > 0,
            "database.acquire_timeout_ms: must be at least 1",
        );
        check(
            self.admin.body_limit_bytes >= 1024,
            "admin.body_limit_bytes: must be at least 1024",
        );
        check(
            self.admin.request_timeout_ms > 0,
            "admin.request_timeout_ms: must be at least 1",
        );
        let r = &self.routing;
        check(
            r.timeout_ms >= 1 && r.timeout_ms <= r.max_timeout_ms,
            "routing.timeout_ms: must be from 1 to routing.max_timeout_ms",
        );
        check(r.max_steps >= 2, "routing.max_steps: must be at least 2");
        check(
            r.max_expression_length >= 16,
            "routing.max_expression_length: must be at least 16",
        );
        check(
            r.expression_timeout_ms >= 1,
            "routing.expression_timeout_ms: must be at least 1",
        );
        check(
            r.http_timeout_ms >= 1,
            "routing.http_timeout_ms: must be at least 1",
        );
        check(
            r.http_max_body_bytes >= 1024,
            "routing.http_max_body_bytes: must be at least 1024",
        );
        let d = &self.decisions;
        check(
            d.queue_capacity >= 1,
            "decisions.queue_capacity: must be at least 1",
        );
        check(
            d.batch_size >= 1,
            "decisions.batch_size: must be at least 1",
        );
        check(
            d.recent_capacity >= 1,
            "decisions.recent_capacity: must be at least 1",
        );
        check(
            d.retention_days >= 1,
            "decisions.retention_days: must be at least 1",
        );
        check(
            d.purge_interval_s >= 1,
            "decisions.purge_interval_s: must be at least 1",
        );
        check(
            self.propagation.reconcile_interval_ms >= 10,
            "propagation.reconcile_interval_ms: must be at least 10",
        );
        let sip = &self.sip;
        check(
            sip.t1_ms >= 1 && sip.t1_ms <= sip.t2_ms,
            "sip.t1_ms: must be from 1 to sip.t2_ms",
        );
        check(sip.t4_ms >= 1, "sip.t4_ms: must be at least 1");
        check(
            sip.max_transactions >= 1,
            "sip.max_transactions: must be at least 1",
        );
        check(
            sip.max_pending_invites >= 1,
            "sip.max_pending_invites: must be at least 1",
        );
        check(
            sip.udp_shed_queue_percent <= 100,
            "sip.udp_shed_queue_percent: must be from 0 to 100",
        );
        check(
            (1024..=65_535).contains(&sip.max_message_bytes),
            "sip.max_message_bytes: must be from 1024 to 65535",
        );
        check(
            sip.max_headers >= 10,
            "sip.max_headers: must be at least 10",
        );
        check(
            sip.tcp_idle_timeout_ms >= 1,
            "sip.tcp_idle_timeout_ms: must be at least 1",
        );
        check(
            sip.tls_handshake_timeout_ms >= 1,
            "sip.tls_handshake_timeout_ms: must be at least 1",
        );
        check(
            sip.tls.is_empty() || (sip.tls_cert.is_some() && sip.tls_key.is_some()),
            "sip.tls: listening on TLS needs sip.tls_cert and sip.tls_key (PEM files)",
        );
        check(
            sip.tcp_first_byte_timeout_ms >= 1,
            "sip.tcp_first_byte_timeout_ms: must be at least 1",
        );
        check(
            sip.tcp_message_timeout_ms >= 1,
            "sip.tcp_message_timeout_ms: must be at least 1",
        );
        check(
            sip.max_connections >= 1 && sip.max_connections_per_ip >= 1,
            "sip.max_connections, sip.max_connections_per_ip: must be at least 1",
        );
        check(
            sip.flood_rate >= 0.0 && sip.flood_trunk_rate >= 0.0,
            "sip.flood_rate, sip.flood_trunk_rate: must not be negative",
        );
        check(
            sip.flood_burst >= 1.0 && sip.flood_trunk_burst >= 1.0,
            "sip.flood_burst, sip.flood_trunk_burst: must be at least 1",
        );
        check(
            (64..=16_777_216).contains(&sip.flood_slots),
            "sip.flood_slots: must be from 64 to 16777216",
        );
        check(
            !self.redirect.agent_domain.is_empty()
                && self
                    .redirect
                    .agent_domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
            "redirect.agent_domain: must be a host name",
        );
        check(
            tracing_filter_is_valid(&self.log.filter),
            "log.filter: not a valid tracing filter (e.g. `info`, `inroute=debug`)",
        );
        problems
    }
}

fn tracing_filter_is_valid(filter: &str) -> bool {
    tracing_subscriber::EnvFilter::try_new(filter).is_ok()
}
