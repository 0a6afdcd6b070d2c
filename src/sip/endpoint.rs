//! Sockets, the INVITE transaction table and timers: where the pure SIP code
//! meets tokio.
//!
//! One task per INVITE races the call handler against CANCEL and sends the
//! final response; the answered transaction then stays in the table
//! (`linger`), where received ACKs and retransmissions and one timer task for
//! all transactions (G, H, I) drive it until it terminates. Everything else is
//! answered statelessly (retransmissions get identical answers because To
//! tags derive from the transaction key). The socket loops are in `transport`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

pub use super::peer::Peer;

use super::backlog::QueueInfo;
use super::limiter::{Limiter, Verdict};
use super::linger::{Outcome, Table, TxnEvent};
use super::parse::ParseLimits;
use super::request::{classify, oversize, CallFacts, Intake};
use super::response::ResponseTemplate;
use super::transaction::{Action, InviteEvent, InviteServer, Timers, TransactionKey};
use super::{Answer, CallHandler};
use crate::metrics::metrics;

/// Endpoint settings (from `sip.*`).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub timers: Timers,
    /// INVITE transactions alive (also answered ones still absorbing
    /// retransmissions) before new INVITEs get 503.
    pub max_transactions: usize,
    /// INVITEs not yet answered with a final response before new INVITEs
    /// get 503 at once (the daemon is behind: shed load, do not queue it).
    pub max_pending_invites: usize,
    /// A UDP receive queue this full (percent) means the daemon is behind:
    /// new INVITEs get 503 at once. 0 disables.
    pub udp_shed_queue_percent: u32,
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

/// Timers of answered transactions fire in batches at most this often.
const TIMER_TICK: Duration = Duration::from_millis(10);

/// The SIP endpoint: shared by every listener.
pub struct Endpoint<H> {
    handler: H,
    config: EndpointConfig,
    invites: Mutex<Table>,
    /// Wakes the timer task when a deadline earlier than all others is queued.
    timer_wake: Arc<Notify>,
    /// New INVITEs get 503 while draining.
    draining: AtomicBool,
    /// INVITEs whose final response is not decided yet (counted from their
    /// arrival, so INVITEs waiting for a worker count too).
    routing: AtomicUsize,
    routed: Notify,
    /// A UDP receive queue was over `udp_shed_queue_percent` when last looked at.
    behind: AtomicBool,
    limiter: Limiter,
    connections: Mutex<HashMap<std::net::IpAddr, usize>>,
}

impl<H: CallHandler> Endpoint<H> {
    pub fn new(handler: H, config: EndpointConfig, limiter: Limiter) -> Arc<Self> {
        metrics()
            .limiter_bytes
            .store(limiter.memory_bytes() as u64, Ordering::Relaxed);
        let timer_wake = Arc::new(Notify::new());
        let endpoint = Arc::new(Self {
            handler,
            config,
            invites: Mutex::new(Table::default()),
            timer_wake: Arc::clone(&timer_wake),
            draining: AtomicBool::new(false),
            routing: AtomicUsize::new(0),
            routed: Notify::new(),
            behind: AtomicBool::new(false),
            limiter,
            connections: Mutex::new(HashMap::new()),
        });
        tokio::spawn(drive_timers(Arc::downgrade(&endpoint), timer_wake));
        endpoint
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

    /// Notes the state of a UDP socket's receive queue (see `backlog`).
    pub fn observe_udp_queue(&self, info: Option<QueueInfo>) {
        let Some(info) = info else { return };
        self.behind.store(
            info.behind(self.config.udp_shed_queue_percent),
            Ordering::Relaxed,
        );
        metrics()
            .udp_receive_drops
            .store(u64::from(info.drops), Ordering::Relaxed);
    }

    /// Whether a UDP receive queue was running full when last looked at.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    /// The endpoint's settings.
    pub(super) fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// INVITE transactions currently alive.
    pub fn live_transactions(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.invites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes `event` to the transaction `key`: to its routing task, or, once
    /// answered, to the transaction itself. `false` if there is none.
    async fn notify(&self, key: &TransactionKey, event: TxnEvent) -> bool {
        let delivered = self.lock().deliver(key, event, Instant::now());
        match delivered {
            Some(outcome) => {
                self.settle(outcome).await;
                true
            }
            None => false,
        }
    }

    /// Carries out what driving a transaction produced.
    async fn settle(&self, outcome: Outcome) {
        if outcome.ended {
            metrics().live_transactions.fetch_sub(1, Ordering::Relaxed);
        }
        if outcome.earlier {
            self.timer_wake.notify_one();
        }
        for (peer, bytes) in outcome.sends {
            peer.send(bytes).await;
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
            oversize(bytes, peer.addr())
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
                self.notify(&key, TxnEvent::Ack).await;
            }
            Intake::Cancel { invite, reply } => {
                if self.notify(&invite, TxnEvent::Cancel).await {
                    peer.send(reply.render(200, "OK", &[])).await;
                } else {
                    peer.send(reply.render(481, "Call/Transaction Does Not Exist", &[]))
                        .await;
                }
            }
            Intake::Invite(intake) => {
                let intake = *intake;
                if self.notify(&intake.key, TxnEvent::Retransmission).await {
                    return;
                }
                if self.config.drop_unknown_sources && !self.handler.knows_source(peer.addr().ip())
                {
                    metrics().dropped.inc("unknown_source", "");
                    tracing::info!(target: "security", source = %peer.addr(), reason = "unknown_source", "dropped INVITE");
                    return;
                }
                if self.draining.load(Ordering::SeqCst) {
                    peer.send(unavailable(&intake.template, "5")).await;
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
        if self.routing.load(Ordering::Relaxed) >= self.config.max_pending_invites
            || self.is_behind()
        {
            metrics().overload_503.fetch_add(1, Ordering::Relaxed);
            peer.send(unavailable(&template, "1")).await;
            return;
        }
        let (tx, rx) = mpsc::channel(8);
        let admitted = {
            let mut table = self.lock();
            let room = table.len() < self.config.max_transactions;
            if room {
                table.insert_routing(key.clone(), tx);
                metrics().live_transactions.fetch_add(1, Ordering::Relaxed);
            }
            room
        };
        if !admitted {
            peer.send(unavailable(&template, "5")).await;
            return;
        }
        // 100 Trying goes out before any routing work.
        let trying = template.render(100, "Trying", &[]);
        peer.send(trying.clone()).await;
        let machine = InviteServer::new(trying, peer.reliable(), self.config.timers);
        let routed = RoutedGuard::new(Arc::clone(self));
        let endpoint = Arc::clone(self);
        tokio::spawn(async move {
            endpoint
                .run_invite(key, machine, template, facts, peer, rx, routed)
                .await;
        });
    }

    /// Drives one INVITE transaction from routing to termination.
    #[allow(clippy::too_many_arguments)]
    async fn run_invite(
        &self,
        key: TransactionKey,
        mut machine: InviteServer,
        template: ResponseTemplate,
        facts: CallFacts,
        peer: Peer,
        mut rx: mpsc::Receiver<TxnEvent>,
        routed: RoutedGuard<H>,
    ) {
        let call_id = facts.call_id.clone();
        // On the heap, so the task stays small, and freed once decided.
        let mut route = Box::pin(self.handler.route(facts));
        let final_response = loop {
            tokio::select! {
                answer = &mut route => break render(&template, &answer),
                event = rx.recv() => match event {
                    Some(TxnEvent::Retransmission) => {
                        for action in machine.on_event(InviteEvent::Retransmission) {
                            if let Action::Send(bytes) = action {
                                peer.send(bytes).await;
                            }
                        }
                    }
                    Some(TxnEvent::Cancel) => {
                        tracing::info!(call_id, "cancelled while routing");
                        break template.render(487, "Request Terminated", &[]);
                    }
                    Some(TxnEvent::Ack) | None => {}
                },
            }
        };
        drop(route);
        drop(routed);
        let outcome = self
            .lock()
            .answer(&key, machine, peer, final_response, Instant::now());
        self.settle(outcome).await;
    }
}

/// Fires the timers of answered transactions (see `linger`), waking at most
/// once per [`TIMER_TICK`]; ends with the endpoint.
async fn drive_timers<H: CallHandler>(endpoint: Weak<Endpoint<H>>, wake: Arc<Notify>) {
    let mut last = Instant::now();
    loop {
        let Some(next) = endpoint.upgrade().map(|e| e.lock().next_due()) else {
            return;
        };
        tokio::select! {
            () = sleep_until(next.map(|at| at.max(last + TIMER_TICK))) => {}
            () = wake.notified() => continue,
        }
        let Some(strong) = endpoint.upgrade() else {
            return;
        };
        last = Instant::now();
        let (sends, retransmitted, ended) = strong.lock().fire_due(last);
        metrics()
            .retransmissions
            .fetch_add(retransmitted, Ordering::Relaxed);
        metrics()
            .live_transactions
            .fetch_sub(ended as i64, Ordering::Relaxed);
        for (peer, bytes) in sends {
            peer.send(bytes).await;
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

/// An INVITE not answered yet: counted from arrival, counted as routed when
/// dropped (also on cancellation).
struct RoutedGuard<H>(Arc<Endpoint<H>>);

impl<H> RoutedGuard<H> {
    fn new(endpoint: Arc<Endpoint<H>>) -> Self {
        endpoint.routing.fetch_add(1, Ordering::SeqCst);
        Self(endpoint)
    }
}

impl<H> Drop for RoutedGuard<H> {
    fn drop(&mut self) {
        self.0.routing.fetch_sub(1, Ordering::SeqCst);
        self.0.routed.notify_waiters();
    }
}

/// `503 Service Unavailable` asking the client to retry after `seconds`.
fn unavailable(template: &ResponseTemplate, seconds: &str) -> Vec<u8> {
    template.render(503, "Service Unavailable", &[("Retry-After", seconds)])
}

fn render(template: &ResponseTemplate, answer: &Answer) -> Vec<u8> {
    let headers: Vec<(&str, &str)> = answer
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    template.render(answer.status, &answer.reason, &headers)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
