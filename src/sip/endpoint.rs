//! Sockets, the INVITE transaction table and timers: where the pure SIP code
//! meets tokio.
//!
//! One task per INVITE races the call handler against CANCEL, sends the
//! final response, and runs the transaction's timers (G, H, I) until it
//! terminates and leaves the table. Everything else is answered statelessly
//! (retransmissions get identical answers because To tags derive from the
//! transaction key).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::framing::{next_frame, Frame};
use super::limiter::{Limiter, Verdict};
use super::parse::ParseLimits;
use super::request::{classify, oversize, CallFacts, Intake};
use super::response::ResponseTemplate;
use super::transaction::{Action, InviteEvent, InviteServer, Timer, Timers, TransactionKey};
use super::{Answer, CallHandler};
use crate::metrics::metrics;

/// Endpoint settings (from `sip.*`).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub timers: Timers,
    /// INVITE transactions in flight before new INVITEs get 503.
    pub max_transactions: usize,
    pub max_message_bytes: usize,
    pub parse: ParseLimits,
    /// Drop (instead of answering 403) requests from addresses of no trunk.
    pub drop_unknown_sources: bool,
    pub tcp_idle_timeout: Duration,
    /// A new connection must send its first byte within this time.
    pub tcp_first_byte_timeout: Duration,
    /// A message, once started, must be complete within this time.
    pub tcp_message_timeout: Duration,
    /// Open TCP/TLS connections in all, and from one address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// User-Agent substrings of known scanners; their requests are dropped.
    pub scanner_user_agents: Vec<String>,
}

/// Where a response goes.
#[derive(Debug, Clone)]
pub enum Peer {
    Udp {
        socket: Arc<UdpSocket>,
        addr: SocketAddr,
    },
    Stream {
        tx: mpsc::Sender<Vec<u8>>,
        addr: SocketAddr,
    },
}

impl Peer {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Udp { addr, .. } | Self::Stream { addr, .. } => *addr,
        }
    }

    fn reliable(&self) -> bool {
        matches!(self, Self::Stream { .. })
    }

    async fn send(&self, bytes: Vec<u8>) {
        match self {
            Self::Udp { socket, addr } => {
                if let Err(e) = socket.send_to(&bytes, addr).await {
                    tracing::debug!(%addr, error = %e, "UDP send failed");
                }
            }
            Self::Stream { tx, .. } => {
                let _ = tx.send(bytes).await;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnEvent {
    Retransmission,
    Ack,
    Cancel,
}

/// The SIP endpoint: shared by every listener.
pub struct Endpoint<H> {
    handler: H,
    config: EndpointConfig,
    invites: Mutex<HashMap<TransactionKey, mpsc::Sender<TxnEvent>>>,
    /// New INVITEs get 503 while draining.
    draining: AtomicBool,
    /// INVITEs whose final response is not decided yet.
    routing: AtomicUsize,
    routed: Notify,
    limiter: Limiter,
    connections: Mutex<HashMap<std::net::IpAddr, usize>>,
}

impl<H: CallHandler> Endpoint<H> {
    pub fn new(handler: H, config: EndpointConfig, limiter: Limiter) -> Arc<Self> {
        metrics()
            .limiter_bytes
            .store(limiter.memory_bytes() as u64, Ordering::Relaxed);
        Arc::new(Self {
            handler,
            config,
            invites: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            routing: AtomicUsize::new(0),
            routed: Notify::new(),
            limiter,
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// Stops taking new INVITEs (503 + Retry-After); calls being routed finish.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Takes a connection slot for `ip`, or `None` over a connection cap.
    pub fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<ConnectionSlot<H>> {
        let mut open = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = open.values().sum();
        let mine = open.get(&ip).copied().unwrap_or(0);
        if total >= self.config.max_connections || mine >= self.config.max_connections_per_ip {
            drop(open);
            metrics().dropped.inc("connection_cap", "");
            tracing::info!(target: "security", source = %ip, reason = "connection_cap", "refused connection");
            return None;
        }
        *open.entry(ip).or_default() += 1;
        Some(ConnectionSlot {
            endpoint: Arc::clone(self),
            ip,
        })
    }

    /// Waits until no INVITE is being routed.
    pub async fn routing_idle(&self) {
        loop {
            let notified = self.routed.notified();
            if self.routing.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// INVITE transactions currently alive.
    pub fn live_transactions(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TransactionKey, mpsc::Sender<TxnEvent>>> {
        self.invites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn notify(&self, key: &TransactionKey, event: TxnEvent) -> bool {
        match self.lock().get(key) {
            Some(tx) => {
                let _ = tx.try_send(event);
                true
            }
            None => false,
        }
    }

    /// Handles one received message.
    pub async fn handle(self: &Arc<Self>, bytes: &[u8], peer: Peer) {
        let ip = peer.addr().ip();
        if let Verdict::Drop { log } = self.limiter.check(ip, self.handler.knows_source(ip)) {
            metrics().dropped.inc("rate_limited", "");
            if log {
                tracing::warn!(target: "security", source = %peer.addr(), reason = "rate_limited", "dropping requests from this source");
            }
            return;
        }
        let intake = if bytes.len() > self.config.max_message_bytes {
            oversize(bytes, peer.addr(), self.config.parse)
        } else {
            classify(
                bytes,
                peer.addr(),
                self.config.parse,
                &self.config.scanner_user_agents,
            )
        };
        match intake {
            Intake::Drop(why @ ("response" | "scanner")) => metrics().dropped.inc(why, ""),
            Intake::Drop(why) => {
                metrics().dropped.inc(why, "");
                tracing::info!(target: "security", source = %peer.addr(), reason = why, "dropped request");
            }
            Intake::Respond(reply) => peer.send(reply.render()).await,
            Intake::Ack(key) => {
                self.notify(&key, TxnEvent::Ack);
            }
            Intake::Cancel { invite, reply } => {
                if self.notify(&invite, TxnEvent::Cancel) {
                    peer.send(reply.render(200, "OK", &[])).await;
                } else {
                    peer.send(reply.render(481, "Call/Transaction Does Not Exist", &[]))
                        .await;
                }
            }
            Intake::Invite(intake) => {
                let intake = *intake;
                if self.notify(&intake.key, TxnEvent::Retransmission) {
                    return;
                }
                if self.config.drop_unknown_sources && !self.handler.knows_source(peer.addr().ip())
                {
                    metrics().dropped.inc("unknown_source", "");
                    tracing::info!(target: "security", source = %peer.addr(), reason = "unknown_source", "dropped INVITE");
                    return;
                }
                if self.draining.load(Ordering::SeqCst) {
                    let busy =
                        intake
                            .template
                            .render(503, "Service Unavailable", &[("Retry-After", "5")]);
                    peer.send(busy).await;
                    return;
                }
                if intake.facts.loop_marker {
                    let loop_detected = intake.template.render(
                        482,
                        "Loop Detected",
                        &[("Reason", "SIP;cause=482;text=\"already routed by inroute\"")],
                    );
                    peer.send(loop_detected).await;
                    return;
                }
                self.start_invite(intake.key, intake.template, intake.facts, peer)
                    .await;
            }
        }
    }

    async fn start_invite(
        self: &Arc<Self>,
        key: TransactionKey,
        template: ResponseTemplate,
        facts: CallFacts,
        peer: Peer,
    ) {
        let (tx, rx) = mpsc::channel(8);
        let admitted = {
            let mut table = self.lock();
            let room = table.len() < self.config.max_transactions;
            if room {
                table.insert(key.clone(), tx);
                metrics().live_transactions.fetch_add(1, Ordering::Relaxed);
            }
            room
        };
        if !admitted {
            let busy = template.render(503, "Service Unavailable", &[("Retry-After", "5")]);
            peer.send(busy).await;
            return;
        }
        // 100 Trying goes out before any routing work.
        let trying = template.render(100, "Trying", &[]);
        peer.send(trying.clone()).await;
        let machine = InviteServer::new(trying, peer.reliable(), self.config.timers);
        let endpoint = Arc::clone(self);
        tokio::spawn(async move {
            endpoint
                .run_invite(machine, &template, facts, &peer, rx)
                .await;
            endpoint.lock().remove(&key);
            metrics().live_transactions.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Drives one INVITE transaction from routing to termination.
    async fn run_invite(
        &self,
        mut machine: InviteServer,
        template: &ResponseTemplate,
        facts: CallFacts,
        peer: &Peer,
        mut rx: mpsc::Receiver<TxnEvent>,
    ) {
        let call_id = facts.call_id.clone();
        self.routing.fetch_add(1, Ordering::SeqCst);
        let routed = RoutedGuard(self);
        let route = self.handler.route(facts);
        tokio::pin!(route);
        let final_response = loop {
            tokio::select! {
                answer = &mut route => break render(template, &answer),
                event = rx.recv() => match event {
                    Some(TxnEvent::Retransmission) => {
                        perform(peer, machine.on_event(InviteEvent::Retransmission), &mut Timers3::default()).await;
                    }
                    Some(TxnEvent::Cancel) => {
                        tracing::info!(call_id, "cancelled while routing");
                        break template.render(487, "Request Terminated", &[]);
                    }
                    Some(TxnEvent::Ack) | None => {}
                },
            }
        };
        drop(routed);
        let mut timers = Timers3::default();
        if perform(
            peer,
            machine.on_event(InviteEvent::Final(final_response)),
            &mut timers,
        )
        .await
        {
            return;
        }
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(TxnEvent::Retransmission) => InviteEvent::Retransmission,
                    Some(TxnEvent::Ack) => InviteEvent::Ack,
                    Some(TxnEvent::Cancel) | None => continue,
                },
                () = sleep_until(timers.g) => {
                    timers.g = None;
                    metrics().retransmissions.fetch_add(1, Ordering::Relaxed);
                    InviteEvent::TimerG
                }
                () = sleep_until(timers.h) => { timers.h = None; InviteEvent::TimerH }
                () = sleep_until(timers.i) => { timers.i = None; InviteEvent::TimerI }
            };
            if perform(peer, machine.on_event(event), &mut timers).await {
                return;
            }
        }
    }
}

/// One open TCP/TLS connection; the slot is released when dropped.
pub struct ConnectionSlot<H> {
    endpoint: Arc<Endpoint<H>>,
    ip: std::net::IpAddr,
}

impl<H> Drop for ConnectionSlot<H> {
    fn drop(&mut self) {
        let mut open = self
            .endpoint
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Counts an INVITE as routed when dropped (also on cancellation).
struct RoutedGuard<'a, H>(&'a Endpoint<H>);

impl<H> Drop for RoutedGuard<'_, H> {
    fn drop(&mut self) {
        self.0.routing.fetch_sub(1, Ordering::SeqCst);
        self.0.routed.notify_waiters();
    }
}

fn render(template: &ResponseTemplate, answer: &Answer) -> Vec<u8> {
    let headers: Vec<(&str, &str)> = answer
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    template.render(answer.status, &answer.reason, &headers)
}

#[derive(Default)]
struct Timers3 {
    g: Option<Instant>,
    h: Option<Instant>,
    i: Option<Instant>,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries out actions; `true` when the transaction terminated.
async fn perform(peer: &Peer, actions: Vec<Action>, timers: &mut Timers3) -> bool {
    let mut terminated = false;
    for action in actions {
        match action {
            Action::Send(bytes) => peer.send(bytes).await,
            Action::Arm(timer, after) => {
                let at = Some(Instant::now() + after);
                match timer {
                    Timer::G => timers.g = at,
                    Timer::H => timers.h = at,
                    Timer::I => timers.i = at,
                }
            }
            Action::Terminate => terminated = true,
        }
    }
    terminated
}

/// Receives datagrams until `shutdown`.
pub async fn serve_udp<H: CallHandler>(
    endpoint: Arc<Endpoint<H>>,
    socket: Arc<UdpSocket>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok((n, addr)) => {
                let peer = Peer::Udp {
                    socket: Arc::clone(&socket),
                    addr,
                };
                endpoint.handle(&buf[..n], peer).await;
            }
            // ICMP errors from earlier sends surface here on Linux; keep serving.
            Err(e) => tracing::debug!(error = %e, "UDP receive error"),
        }
    }
}

/// Accepts TCP connections until `shutdown`.
pub async fn serve_tcp<H: CallHandler>(
    endpoint: Arc<Endpoint<H>>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let Some(slot) = endpoint.admit(addr.ip()) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_stream(
                    slot,
                    Arc::clone(&endpoint),
                    stream,
                    addr,
                    shutdown.child_token(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one stream connection (TCP, or TLS after the handshake).
pub async fn serve_stream<H, S>(
    _slot: ConnectionSlot<H>,
    endpoint: Arc<Endpoint<H>>,
    stream: S,
    addr: SocketAddr,
    shutdown: CancellationToken,
) where
    H: CallHandler,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let max = endpoint.config.max_message_bytes;
    let idle = endpoint.config.tcp_idle_timeout;
    let opened = Instant::now();
    let mut message_started: Option<Instant> = None;
    let mut read_any = false;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    'connection: loop {
        loop {
            match next_frame(&buf, max) {
                Ok(Frame::Message { len }) => {
                    let peer = Peer::Stream {
                        tx: tx.clone(),
                        addr,
                    };
                    endpoint.handle(&buf[..len], peer).await;
                    buf.drain(..len);
                }
                Ok(Frame::KeepAlive { consumed, pong }) => {
                    if pong {
                        let _ = tx.send(b"\r\n".to_vec()).await;
                    }
                    buf.drain(..consumed);
                }
                Ok(Frame::Incomplete) => break,
                Err(e) => {
                    tracing::info!(target: "security", source = %addr, reason = %e, "closing stream: framing lost");
                    break 'connection;
                }
            }
        }
        // Partial bytes start the message clock (slow senders are cut off).
        message_started = if buf.is_empty() {
            None
        } else {
            message_started.or(Some(Instant::now()))
        };
        let deadline = match (read_any, message_started) {
            (false, _) => opened + endpoint.config.tcp_first_byte_timeout,
            (true, Some(start)) => {
                (start + endpoint.config.tcp_message_timeout).min(Instant::now() + idle)
            }
            (true, None) => Instant::now() + idle,
        };
        let mut chunk = [0u8; 8192];
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, reader.read(&mut chunk)) => r,
            () = shutdown.cancelled() => break,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                read_any = true;
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// Loads a rustls server configuration from PEM files.
///
/// # Errors
/// Unreadable files, no certificate or key in them, or a key that does not
/// match the certificate.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS connections until `shutdown`; each handshake is bounded.
pub async fn serve_tls<H: CallHandler>(
    endpoint: Arc<Endpoint<H>>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "TLS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = endpoint.admit(addr.ip()) else {
            continue;
        };
        let (endpoint, acceptor, shutdown) = (
            Arc::clone(&endpoint),
            acceptor.clone(),
            shutdown.child_token(),
        );
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_stream(slot, endpoint, tls, addr, shutdown).await,
                Ok(Err(e)) => {
                    tracing::info!(target: "security", source = %addr, reason = %e, "TLS handshake failed")
                }
                Err(_) => {
                    tracing::info!(target: "security", source = %addr, reason = "handshake timeout", "TLS handshake failed")
                }
            }
        });
    }
}
