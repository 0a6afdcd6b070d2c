//! Limits and flood protection on real sockets: per-source budgets (trunk
//! traffic unaffected), scanner User-Agents, oversize datagrams, connection
//! caps, slow TCP senders and TLS handshakes, too many headers.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::sip::{request, Udp};
use support::{Backend, TestDaemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(3);

async fn daemon() -> TestDaemon {
    let d = TestDaemon::start_with(Backend::Sqlite, |c| {
        c.sip.flood_rate = 10.0;
        c.sip.flood_burst = 20.0;
        c.sip.max_message_bytes = 2_000;
        c.sip.max_connections_per_ip = 2;
        c.sip.tcp_first_byte_timeout_ms = 300;
        c.sip.tcp_message_timeout_ms = 300;
    })
    .await
    .unwrap();
    // Only 127.0.0.1 is a trunk; 127.0.0.2 and the rest of 127/8 are not.
    d.call_org_on("127.0.0.1", &["+15550000701"], true, None)
        .await;
    d
}

async fn udp_from(ip: &str, server: SocketAddr) -> Udp {
    Udp {
        socket: UdpSocket::bind((ip, 0)).await.unwrap(),
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_source_is_cut_off_while_the_trunk_keeps_routing() {
    let d = daemon().await;
    let attacker = udp_from("127.0.0.2", d.sip_udp()).await;
    let trunk = udp_from("127.0.0.1", d.sip_udp()).await;
    for n in 0..200 {
        attacker
            .send(&request(
                "OPTIONS",
                "+1",
                &format!("z9hG4bKflood{n}"),
                &format!("flood{n}@x"),
                "",
            ))
            .await;
    }
    let mut answered = 0;
    while attacker.recv(Duration::from_millis(300)).await.is_some() {
        answered += 1;
    }
    assert!(
        (20..=40).contains(&answered),
        "burst of 20 then cut off, got {answered}"
    );
    for n in 0..30 {
        trunk
            .send(&request(
                "INVITE",
                "+15550000701",
                &format!("z9hG4bKtrunk{n}"),
                &format!("trunk{n}@x"),
                "",
            ))
            .await;
        let last = trunk.until_final(WAIT).await.pop().expect("an answer");
        assert_eq!(last.status, 302, "trunk call {n}");
    }
    let metrics = reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("inroute_sip_dropped_total{cause=\"rate_limited\"}"))
        .unwrap();
    assert!(
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 100.0,
        "{line}"
    );
    d.stop().await;
}

#[tokio::test]
async fn scanners_get_no_answer() {
    let d = daemon().await;
    let ua = Udp::new(d.sip_udp()).await;
    for agent in [
        "friendly-scanner",
        "sipvicious 0.3",
        "SIPCLI/v1.8",
        "VaxSIPUserAgent/3.1",
    ] {
        ua.send(&request(
            "OPTIONS",
            "+1",
            &format!("z9hG4bK{}", agent.len()),
            "s@x",
            &format!("User-Agent: {agent}\r\n"),
        ))
        .await;
        assert!(
            ua.recv(Duration::from_millis(300)).await.is_none(),
            "{agent}"
        );
    }
    ua.send(&request(
        "OPTIONS",
        "+1",
        "z9hG4bKok",
        "ok@x",
        "User-Agent: Carrier-SBC\r\n",
    ))
    .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 200);
    d.stop().await;
}

#[tokio::test]
async fn limiter_memory_stays_flat_with_many_sources() {
    let d = daemon().await;
    let metric = || async {
        let text = reqwest::get(d.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("inroute_flood_limiter_bytes "))
            .unwrap()
            .to_owned()
    };
    let before = metric().await;
    let server = d.sip_udp();
    let mut answered = 0;
    for n in 0..1000u32 {
        let ip = format!(
            "127.{}.{}.{}",
            10 + n / 65_536,
            (n / 256) % 256,
            n % 256 + 1
        );
        let Ok(socket) = UdpSocket::bind((ip.as_str(), 0)).await else {
            continue;
        };
        let ua = Udp { socket, server };
        ua.send(&request(
            "OPTIONS",
            "+1",
            &format!("z9hG4bKmany{n}"),
            &format!("many{n}@x"),
            "",
        ))
        .await;
        answered += usize::from(ua.recv(WAIT).await.is_some_and(|r| r.status == 200));
    }
    assert!(
        answered >= 990,
        "each new source has its own budget: {answered}"
    );
    assert_eq!(metric().await, before, "fixed memory");
    d.stop().await;
}

#[tokio::test]
async fn oversize_datagrams_get_513() {
    let d = daemon().await;
    let ua = Udp::new(d.sip_udp()).await;
    let big = format!("X-Pad: {}\r\n", "p".repeat(3_000));
    ua.send(&request("OPTIONS", "+1", "z9hG4bKbig", "big@x", &big))
        .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 513);
    d.stop().await;
}

/// Whether the server closes the connection within `within`.
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn slow_and_excess_tcp_connections_are_closed() {
    let d = daemon().await;
    // Nothing sent: closed by the first-byte timeout.
    let mut silent = TcpStream::connect(d.sip_tcp()).await.unwrap();
    assert!(
        closed(&mut silent, Duration::from_secs(2)).await,
        "first-byte timeout"
    );
    // Half a message: closed by the message timeout.
    let mut slow = TcpStream::connect(d.sip_tcp()).await.unwrap();
    slow.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKs\r\n")
        .await
        .unwrap();
    assert!(
        closed(&mut slow, Duration::from_secs(2)).await,
        "message timeout"
    );
    // Per-address cap of 2: the third connection is closed at once.
    let mut a = TcpStream::connect(d.sip_tcp()).await.unwrap();
    let mut b = TcpStream::connect(d.sip_tcp()).await.unwrap();
    a.write_all(b"\r\n").await.unwrap();
    b.write_all(b"\r\n").await.unwrap();
    let mut third = TcpStream::connect(d.sip_tcp()).await.unwrap();
    assert!(
        closed(&mut third, Duration::from_millis(200)).await,
        "over the per-address cap"
    );
    drop((a, b));
    d.stop().await;
}

#[tokio::test]
async fn a_tcp_client_sending_one_byte_at_a_time_is_cut_off() {
    let d = daemon().await;
    let message = request("OPTIONS", "+1", "z9hG4bKdribble", "dribble@x", "");
    let mut stream = TcpStream::connect(d.sip_tcp()).await.unwrap();
    // One byte every 50 ms: the message would take seconds; the message
    // timeout (300 ms) ends the connection long before.
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0;
    for byte in &message {
        pace.tick().await;
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        if closed(&mut stream, Duration::from_millis(1)).await {
            break;
        }
    }
    assert!(
        sent < message.len() / 2,
        "cut off after {sent} of {} bytes",
        message.len()
    );
    d.stop().await;
}

#[tokio::test]
async fn many_idle_connections_stay_within_the_per_address_cap() {
    let d = daemon().await;
    let mut open = Vec::new();
    for _ in 0..12 {
        let mut stream = TcpStream::connect(d.sip_tcp()).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
        open.push(stream);
    }
    let mut refused = 0;
    for stream in &mut open {
        if closed(stream, Duration::from_millis(200)).await {
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "the cap is 2 per address");
    d.stop().await;
}

#[tokio::test]
async fn a_tls_client_that_never_finishes_the_handshake_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("sip.crt"), dir.path().join("sip.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let d = TestDaemon::start_with(Backend::Sqlite, |c| {
        c.sip.tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.sip.tls_cert = Some(cert_path.clone());
        c.sip.tls_key = Some(key_path.clone());
        c.sip.tls_handshake_timeout_ms = 300;
    })
    .await
    .unwrap();
    let tls_addr = d.daemon.as_ref().unwrap().sip_tls[0];
    let mut stream = TcpStream::connect(tls_addr).await.unwrap();
    // The first bytes of a ClientHello record, and then nothing.
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    assert!(
        closed(&mut stream, Duration::from_secs(3)).await,
        "the handshake timeout closes the connection"
    );
    d.stop().await;
}

#[tokio::test]
async fn too_many_headers_get_400() {
    let d = daemon().await;
    let ua = Udp::new(d.sip_udp()).await;
    // Over sip.max_headers (100), under sip.max_message_bytes (2,000 here).
    let many: String = (0..120).map(|i| format!("A{i}: 1\r\n")).collect();
    ua.send(&request("OPTIONS", "+1", "z9hG4bKmany", "many@x", &many))
        .await;
    let r = ua.recv(WAIT).await.expect("an answer, not silence");
    assert_eq!(r.status, 400, "{}", r.text);
    d.stop().await;
}
