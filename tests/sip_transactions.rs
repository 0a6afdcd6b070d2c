//! Transaction behaviour on real sockets, with a fake call handler at the
//! seam the SIP side owns (`CallHandler`): retransmissions, Timer G/H with
//! a paused clock, CANCEL races, TCP framing.

mod support;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use inroute::sip::endpoint::{Endpoint, EndpointConfig};
use inroute::sip::limiter::{Budget, Limiter};
use inroute::sip::parse::ParseLimits;
use inroute::sip::transaction::Timers;
use inroute::sip::transport::{serve_tcp, serve_udp};
use inroute::sip::{Answer, CallFacts, CallHandler};
use support::sip::{request, tcp_exchange, Udp};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Answers 302 once the test opens the gate (a closed gate is a workflow
/// that is still running), counting routes.
#[derive(Clone)]
struct Fake {
    routes: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl CallHandler for Fake {
    fn knows_source(&self, _: IpAddr) -> bool {
        true
    }

    fn route(&self, _facts: CallFacts) -> impl std::future::Future<Output = Answer> + Send {
        self.routes.fetch_add(1, Ordering::SeqCst);
        let gate = Arc::clone(&self.gate);
        async move {
            gate.acquire().await.expect("gate open").forget();
            Answer {
                status: 302,
                reason: "Moved Temporarily".into(),
                headers: vec![("Contact".into(), "<sip:a@b>".into())],
            }
        }
    }
}

struct Server {
    udp: std::net::SocketAddr,
    tcp: std::net::SocketAddr,
    routes: Arc<AtomicUsize>,
    /// Each permit lets one routing finish.
    gate: Arc<Semaphore>,
    endpoint: Arc<Endpoint<Fake>>,
    _stop: tokio_util::sync::DropGuard,
}

/// A server whose routing finishes at once (`open`) or only when the test
/// adds permits to `gate`.
const MAX_PENDING: usize = 1_000;

async fn server(open: bool) -> Server {
    server_with(open, MAX_PENDING).await
}

async fn server_with(open: bool, max_pending: usize) -> Server {
    let routes = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(if open {
        Semaphore::MAX_PERMITS
    } else {
        0
    }));
    let endpoint = Endpoint::new(
        Fake {
            routes: routes.clone(),
            gate: Arc::clone(&gate),
        },
        EndpointConfig {
            timers: Timers::default(),
            max_transactions: 100,
            max_pending_invites: max_pending,
            udp_shed_queue_percent: 0,
            max_message_bytes: 65_535,
            parse: ParseLimits::default(),
            drop_unknown_sources: false,
            tcp_idle_timeout: Duration::from_secs(2),
            tcp_first_byte_timeout: Duration::from_secs(2),
            tcp_message_timeout: Duration::from_secs(2),
            max_connections: 100,
            max_connections_per_ip: 100,
            scanner_user_agents: Vec::new(),
        },
        Limiter::new(
            1024,
            Budget {
                rate: 0.0,
                burst: 1.0,
            },
            Budget {
                rate: 0.0,
                burst: 1.0,
            },
            Duration::from_secs(10),
        ),
    );
    let stop = CancellationToken::new();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_addr = udp.local_addr().unwrap();
    tokio::spawn(serve_udp(
        endpoint.clone(),
        Arc::new(udp),
        stop.child_token(),
    ));
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    tokio::spawn(serve_tcp(endpoint.clone(), tcp, stop.child_token()));
    Server {
        udp: udp_addr,
        tcp: tcp_addr,
        routes,
        gate,
        endpoint,
        _stop: stop.drop_guard(),
    }
}

const WAIT: Duration = Duration::from_secs(3);

fn ack(branch: &str, call_id: &str, to_tag: &str) -> Vec<u8> {
    let raw = String::from_utf8(request("ACK", "+1555", branch, call_id, "")).unwrap();
    raw.replace(
        "To: <sip:+1555@127.0.0.1>",
        &format!("To: <sip:+1555@127.0.0.1>;tag={to_tag}"),
    )
    .into_bytes()
}

fn to_tag(r: &support::sip::Response) -> String {
    r.header("To")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn invite_retransmissions_while_routing_get_100_and_route_once() {
    let s = server(false).await;
    let ua = Udp::new(s.udp).await;
    let invite = request("INVITE", "+1555", "z9hG4bKretx1", "retx1@test", "");
    ua.send(&invite).await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 100);
    for _ in 0..3 {
        ua.send(&invite).await;
        assert_eq!(
            ua.recv(WAIT).await.unwrap().status,
            100,
            "a retransmission while routing gets 100 again"
        );
    }
    s.gate.add_permits(1);
    let last = ua.recv(WAIT).await.unwrap();
    assert_eq!(last.status, 302);
    // After the final, a retransmitted INVITE gets the same final again.
    ua.send(&invite).await;
    let again = ua.recv(WAIT).await.unwrap();
    assert_eq!((again.status, to_tag(&again)), (302, to_tag(&last)));
    assert_eq!(s.routes.load(Ordering::SeqCst), 1, "the workflow ran once");

    // RFC 2543 request (no branch cookie, no From tag): a retransmission is the same transaction.
    let old =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture/inv2543.dat"))
            .unwrap();
    let ua2 = Udp::new(s.udp).await;
    ua2.send(&old).await;
    assert_eq!(ua2.recv(WAIT).await.unwrap().status, 100);
    ua2.send(&old).await;
    assert_eq!(ua2.recv(WAIT).await.unwrap().status, 100);
    s.gate.add_permits(1);
    assert_eq!(ua2.recv(WAIT).await.unwrap().status, 302);
    assert_eq!(s.routes.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn final_responses_are_retransmitted_on_timer_g_until_ack_or_timer_h() {
    let s = server(true).await;
    // Never ACKed: 302 plus retransmissions at 0.5, 1.5, 3.5, 7.5, ... 31.5 s, then Timer H (32 s).
    let ua = Udp::new(s.udp).await;
    ua.send(&request("INVITE", "+1555", "z9hG4bKtimerg", "g@test", ""))
        .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 100);
    let started = tokio::time::Instant::now();
    let mut at = Vec::new();
    while let Some(r) = ua.recv(Duration::from_secs(10)).await {
        assert_eq!(r.status, 302);
        at.push(started.elapsed().as_millis() / 100);
    }
    assert_eq!(
        at,
        [0, 5, 15, 35, 75, 115, 155, 195, 235, 275, 315],
        "deciseconds"
    );
    assert_eq!(
        s.endpoint.live_transactions(),
        0,
        "Timer H removed the transaction"
    );

    // ACKed after the second retransmission: no more sends; gone after Timer I.
    let ua = Udp::new(s.udp).await;
    ua.send(&request("INVITE", "+1555", "z9hG4bKtimerg2", "g2@test", ""))
        .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 100);
    let first = ua.recv(WAIT).await.unwrap();
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 302);
    ua.send(&ack("z9hG4bKtimerg2", "g2@test", &to_tag(&first)))
        .await;
    assert!(
        ua.recv(Duration::from_secs(40)).await.is_none(),
        "the ACK stopped retransmission"
    );
    assert_eq!(
        s.endpoint.live_transactions(),
        0,
        "Timer I removed the transaction"
    );
}

#[tokio::test]
async fn cancel_before_and_after_the_decision() {
    let s = server(false).await;
    // Before: 200 to the CANCEL, 487 to the INVITE.
    let ua = Udp::new(s.udp).await;
    ua.send(&request("INVITE", "+1555", "z9hG4bKc1", "c1@test", ""))
        .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 100);
    ua.send(&request("CANCEL", "+1555", "z9hG4bKc1", "c1@test", ""))
        .await;
    let mut statuses = [ua.recv(WAIT).await.unwrap(), ua.recv(WAIT).await.unwrap()];
    statuses.sort_by_key(|r| r.status);
    assert_eq!((statuses[0].status, statuses[1].status), (200, 487));
    assert!(statuses[0].header("CSeq").unwrap().ends_with("CANCEL"));
    assert!(statuses[1].header("CSeq").unwrap().ends_with("INVITE"));
    while let Some(r) = ua.recv(Duration::from_millis(700)).await {
        assert_eq!(
            r.status, 487,
            "only 487 retransmissions (until ACK), never a 302"
        );
    }

    // After: the INVITE keeps its 302; the CANCEL still gets 200.
    let s = server(true).await;
    let ua = Udp::new(s.udp).await;
    ua.send(&request("INVITE", "+1555", "z9hG4bKc2", "c2@test", ""))
        .await;
    let finals = ua.until_final(WAIT).await;
    assert_eq!(finals.last().unwrap().status, 302);
    ua.send(&request("CANCEL", "+1555", "z9hG4bKc2", "c2@test", ""))
        .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 200);

    // No such transaction: 481.
    ua.send(&request("CANCEL", "+1555", "z9hG4bKnone", "none@test", ""))
        .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 481);
}

#[tokio::test]
async fn tcp_framing() {
    let s = server(true).await;
    let options = |n: u32| {
        request(
            "OPTIONS",
            "+1555",
            &format!("z9hG4bKt{n}"),
            &format!("t{n}@test"),
            "",
        )
    };
    // Two messages in one segment.
    let mut two = options(1);
    two.extend_from_slice(&options(2));
    let (responses, _) = tcp_exchange(s.tcp, &[&two], Duration::from_millis(500)).await;
    assert_eq!(
        responses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200]
    );
    // One message split over many writes (with a keep-alive ping first).
    let one = options(3);
    let mut chunks: Vec<&[u8]> = vec![b"\r\n\r\n"];
    chunks.extend(one.chunks(7));
    let (responses, closed) = tcp_exchange(s.tcp, &chunks, Duration::from_millis(500)).await;
    assert_eq!(
        responses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200]
    );
    assert!(!closed);
    // An INVITE over TCP: 100, 302, no retransmission (reliable transport).
    let (responses, _) = tcp_exchange(
        s.tcp,
        &[&request("INVITE", "+1555", "z9hG4bKtcp", "tcp@test", "")],
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(
        responses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [100, 302]
    );
    // A bad Content-Length closes the connection without an answer.
    let bad = String::from_utf8(options(4))
        .unwrap()
        .replace("Content-Length: 0", "Content-Length: -5");
    let (responses, closed) = tcp_exchange(s.tcp, &[bad.as_bytes()], Duration::from_secs(2)).await;
    assert!(responses.is_empty() && closed);
}

#[tokio::test]
async fn invites_past_the_pending_cap_get_503_at_once_and_are_not_routed() {
    let s = server_with(false, 2).await;
    let ua = Udp::new(s.udp).await;
    let invite = |n: u32| {
        request(
            "INVITE",
            "+1555",
            &format!("z9hG4bKpend{n}"),
            &format!("pend{n}@test"),
            "",
        )
    };
    for n in 0..2 {
        ua.send(&invite(n)).await;
        assert_eq!(ua.recv(WAIT).await.unwrap().status, 100);
    }
    ua.send(&invite(2)).await;
    let busy = ua.recv(WAIT).await.unwrap();
    assert_eq!((busy.status, busy.header("Retry-After")), (503, Some("1")));
    s.gate.add_permits(2);
    for _ in 0..2 {
        assert_eq!(ua.recv(WAIT).await.unwrap().status, 302);
    }
    // Answered INVITEs no longer count, though their transactions linger.
    ua.send(&invite(3)).await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 100);
    s.gate.add_permits(1);
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 302);
    assert_eq!(
        s.routes.load(Ordering::SeqCst),
        3,
        "the shed INVITE was never routed"
    );
}
