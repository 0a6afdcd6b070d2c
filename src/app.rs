//! Wiring: the only module that knows every other. Builds the store and the
//! admin server from a [`Config`], runs them, and stops them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, Engine, Readiness};
use crate::call::CallRouter;
use crate::config::{Config, UnknownSource};
use crate::decision_log::DecisionLog;
use crate::demo;
use crate::routing::HttpClient;
use crate::shutdown::{self, ShutdownKind};
use crate::sip::{
    self,
    endpoint::{Endpoint, EndpointConfig},
    limiter::{Budget, Limiter},
    parse::ParseLimits,
    transaction::Timers,
};
use crate::snapshot::Routing;
use crate::store::Store;

/// A running daemon. Dropping it does not stop it; call [`Daemon::stop`].
pub struct Daemon {
    /// The admin API's bound address (useful when configured with port 0).
    pub admin_addr: SocketAddr,
    /// Set by `--demo`: the demo organization and its fresh key.
    pub demo: Option<demo::DemoOrg>,
    /// Bound SIP UDP addresses (useful when configured with port 0).
    pub sip_udp: Vec<SocketAddr>,
    /// Bound SIP TCP addresses.
    pub sip_tcp: Vec<SocketAddr>,
    /// Bound SIP TLS addresses.
    pub sip_tls: Vec<SocketAddr>,
    /// The live routing snapshot.
    pub routing: Routing,
    /// Workflow runtime shared by calls and dry runs.
    pub engine: Engine,
    /// The decision log.
    pub decisions: DecisionLog,
    endpoint: Arc<Endpoint<CallRouter>>,
    closing: CancellationToken,
    decision_writer: JoinHandle<()>,
    store: Store,
    readiness: Readiness,
    cancel: CancellationToken,
    admin_task: JoinHandle<std::io::Result<()>>,
    grace: Duration,
}

/// Connects and migrates the store, seeds the demo organization if asked,
/// binds the admin port and starts serving.
///
/// # Errors
/// The database cannot be reached or migrated, or a port cannot be bound.
pub async fn start(config: Config, with_demo: bool) -> anyhow::Result<Daemon> {
    let store = open_store(&config).await?;
    let demo = if with_demo {
        Some(
            demo::seed(&store)
                .await
                .context("could not create the demo organization")?,
        )
    } else {
        None
    };

    let listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("could not bind the admin API to {}", config.admin.listen))?;
    let admin_addr = listener.local_addr()?;
    tracing::info!(proto = "http", addr = %admin_addr, "listening");

    let routing = Routing::load(&store, config.routing.limits())
        .await
        .context("could not load the routing snapshot")?;
    let engine = Engine {
        http: HttpClient::new(config.routing.http_max_body_bytes)
            .context("could not build the HTTP client")?,
        expression_timeout_ms: config.routing.expression_timeout_ms,
        max_concurrent: config.routing.concurrency(),
    };
    let readiness = Readiness::default();
    let cancel = CancellationToken::new();
    let closing = CancellationToken::new();
    let (decisions, decision_writer) =
        DecisionLog::start(store.clone(), &config.decisions, closing.clone());
    let state = AdminState {
        store: store.clone(),
        limits: Arc::new(config.admin.clone()),
        readiness: readiness.clone(),
        routing: routing.clone(),
        engine: engine.clone(),
        decisions: decisions.clone(),
    };
    let admin_task = tokio::spawn(admin::serve(
        listener,
        admin::router(state),
        cancel.child_token(),
    ));
    let sip = start_sip(&config, &routing, &engine, &decisions, &cancel).await?;
    let reconcile = Duration::from_millis(config.propagation.reconcile_interval_ms);
    crate::propagation::start(
        store.clone(),
        routing.clone(),
        reconcile,
        cancel.child_token(),
    );
    readiness.set(true);
    Ok(Daemon {
        admin_addr,
        demo,
        sip_udp: sip.udp,
        sip_tcp: sip.tcp,
        sip_tls: sip.tls,
        routing,
        engine,
        decisions,
        endpoint: sip.endpoint,
        closing,
        decision_writer,
        store,
        readiness,
        cancel,
        admin_task,
        grace: Duration::from_millis(config.shutdown.grace_ms),
    })
}

/// The SIP endpoint and its bound addresses.
struct Sip {
    endpoint: Arc<Endpoint<CallRouter>>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
}

/// Binds the SIP listeners and starts serving them.
async fn start_sip(
    config: &Config,
    routing: &Routing,
    engine: &Engine,
    decisions: &DecisionLog,
    cancel: &CancellationToken,
) -> anyhow::Result<Sip> {
    let sip = &config.sip;
    let router = CallRouter::new(
        routing.clone(),
        engine.http.clone(),
        engine.expression_timeout_ms,
        config.redirect.clone(),
        config.routing.concurrency(),
        decisions.clone(),
    );
    let endpoint = Endpoint::new(
        router,
        EndpointConfig {
            timers: Timers {
                t1: Duration::from_millis(sip.t1_ms),
                t2: Duration::from_millis(sip.t2_ms),
                t4: Duration::from_millis(sip.t4_ms),
            },
            max_transactions: sip.max_transactions,
            max_pending_invites: sip.max_pending_invites,
            udp_shed_queue_percent: sip.udp_shed_queue_percent,
            max_message_bytes: sip.max_message_bytes,
            parse: ParseLimits {
                max_headers: sip.max_headers,
            },
            drop_unknown_sources: sip.unknown_source == UnknownSource::Drop,
            tcp_idle_timeout: Duration::from_millis(sip.tcp_idle_timeout_ms),
            tcp_first_byte_timeout: Duration::from_millis(sip.tcp_first_byte_timeout_ms),
            tcp_message_timeout: Duration::from_millis(sip.tcp_message_timeout_ms),
            max_connections: sip.max_connections,
            max_connections_per_ip: sip.max_connections_per_ip,
            scanner_user_agents: sip.scanner_user_agents.clone(),
        },
        Limiter::new(
            sip.flood_slots,
            Budget {
                rate: sip.flood_rate,
                burst: sip.flood_burst,
            },
            Budget {
                rate: sip.flood_trunk_rate,
                burst: sip.flood_trunk_burst,
            },
            Duration::from_millis(sip.flood_log_interval_ms),
        ),
    );
    let mut udp = Vec::new();
    for addr in &sip.udp {
        let socket = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("could not bind SIP UDP to {addr}"))?;
        let bound = socket.local_addr()?;
        let buffer = socket2::SockRef::from(&socket);
        if sip.udp_receive_buffer_bytes > 0 {
            if let Err(e) = buffer.set_recv_buffer_size(sip.udp_receive_buffer_bytes) {
                tracing::warn!(error = %e, "could not set the UDP receive buffer size");
            }
        }
        let receive_buffer = buffer.recv_buffer_size().unwrap_or_default();
        tracing::info!(proto = "udp", addr = %bound, receive_buffer, "listening");
        tokio::spawn(sip::transport::serve_udp(
            Arc::clone(&endpoint),
            Arc::new(socket),
            cancel.child_token(),
        ));
        udp.push(bound);
    }
    let mut tcp = Vec::new();
    for addr in &sip.tcp {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not bind SIP TCP to {addr}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(proto = "tcp", addr = %bound, "listening");
        tokio::spawn(sip::transport::serve_tcp(
            Arc::clone(&endpoint),
            listener,
            cancel.child_token(),
        ));
        tcp.push(bound);
    }
    let mut tls = Vec::new();
    if !sip.tls.is_empty() {
        let (cert, key) = (sip.tls_cert.as_deref(), sip.tls_key.as_deref());
        let acceptor = sip::transport::tls_acceptor(
            cert.unwrap_or(Path::new("")),
            key.unwrap_or(Path::new("")),
        )
        .map_err(|e| anyhow::anyhow!("could not load the SIP TLS certificate: {e}"))?;
        for addr in &sip.tls {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("could not bind SIP TLS to {addr}"))?;
            let bound = listener.local_addr()?;
            tracing::info!(proto = "tls", addr = %bound, "listening");
            let handshake = Duration::from_millis(sip.tls_handshake_timeout_ms);
            tokio::spawn(sip::transport::serve_tls(
                Arc::clone(&endpoint),
                listener,
                acceptor.clone(),
                handshake,
                cancel.child_token(),
            ));
            tls.push(bound);
        }
    }
    Ok(Sip {
        endpoint,
        udp,
        tcp,
        tls,
    })
}

/// Connects to the configured database and applies migrations.
///
/// # Errors
/// The database is unreachable or a migration fails; the message names the URL's backend.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database).await.with_context(|| {
        format!(
            "could not open the database at {}",
            redact(&config.database.url)
        )
    })?;
    store
        .migrate()
        .await
        .context("could not apply database migrations")?;
    Ok(store)
}

/// Hides the password of a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Daemon {
    /// Stops the daemon. A drain first marks it not ready, answers new
    /// INVITEs 503 + `Retry-After`, lets calls being routed finish, and
    /// flushes queued decision records, all within `shutdown.grace_ms`; a
    /// fast stop skips the waiting.
    pub async fn stop(self, kind: ShutdownKind) {
        let deadline = tokio::time::Instant::now()
            + match kind {
                ShutdownKind::Drain => self.grace,
                ShutdownKind::Fast => Duration::ZERO,
            };
        self.readiness.set(false);
        self.endpoint.drain();
        if tokio::time::timeout_at(deadline, self.endpoint.routing_idle())
            .await
            .is_err()
        {
            tracing::warn!("grace period over with calls still being routed");
        }
        self.cancel.cancel();
        self.closing.cancel();
        let mut writer = self.decision_writer;
        if tokio::time::timeout_at(deadline, &mut writer)
            .await
            .is_err()
        {
            tracing::warn!(
                queued = self.decisions.queued(),
                "grace period over before the decision log was flushed"
            );
            writer.abort();
        }
        let mut admin_task = self.admin_task;
        match tokio::time::timeout_at(deadline, &mut admin_task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "admin API failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "admin API task panicked"),
            Ok(Ok(Ok(()))) => {}
            Err(_) => admin_task.abort(),
        }
        self.store.close().await;
        tracing::info!(?kind, "stopped");
    }
}

/// Runs until a signal: SIGTERM drains, SIGINT or a second signal stops at once.
///
/// # Errors
/// Start-up failures (see [`start`]).
pub async fn run(config: Config, with_demo: bool) -> anyhow::Result<()> {
    let daemon = start(config, with_demo).await?;
    if let Some(demo) = &daemon.demo {
        println!("{}", demo.banner(daemon.admin_addr, &daemon.sip_udp));
    }
    let kind = shutdown::signal().await;
    tracing::info!(?kind, "shutdown requested");
    let stop = daemon.stop(kind);
    tokio::select! {
        () = stop => {}
        _ = shutdown::signal() => tracing::warn!("second signal: stopping now"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn database_passwords_are_hidden() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("sqlite://data/inroute.db"),
            "sqlite://data/inroute.db"
        );
    }
}
