//! Each decision path of the spec, end to end over SIP (UDP), against a
//! daemon on port 0 with a real database.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::sip::{request, Udp};
use support::{Backend, TestDaemon};

const WAIT: Duration = Duration::from_secs(5);

fn workflow(output: Value) -> Value {
    json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "out"},
        {"id": "out", "type": "output", "fields": output}]})
}

/// Sends an INVITE to `called` and returns (provisional statuses, final response).
async fn call(d: &TestDaemon, called: &str, extra: &str) -> (Vec<u16>, support::sip::Response) {
    let ua = Udp::new(d.sip_udp()).await;
    let branch = format!("z9hG4bK{}", inroute::token::random_alnum(10));
    ua.send(&request(
        "INVITE",
        called,
        &branch,
        &format!("{branch}@test"),
        extra,
    ))
    .await;
    let mut all = ua.until_final(WAIT).await;
    let last = all.pop().expect("a final response");
    (all.iter().map(|r| r.status).collect(), last)
}

#[tokio::test]
async fn every_decision_path_over_sip() {
    let Some(d) = TestDaemon::start(Backend::Sqlite).await else {
        return;
    };
    // Workflow picks an agent (latest published: v2) with context.
    d.call_org(
        &["+15550000001"],
        false,
        Some(json!({"workflow_definition": workflow(json!({
        "agent_id": "agent_a", "initial_context": "{{ 'caller ' & input.caller_number }}"}))})),
    )
    .await;
    let (provisional, r) = call(&d, "+15550000001", "").await;
    assert_eq!(provisional, [100], "100 Trying first");
    assert_eq!(r.status, 302, "{}", r.text);
    let contact = r.header("Contact").unwrap();
    assert!(
        contact.starts_with("<sip:agent_a@agents.invalid?X-Inroute-Decision-Id=dec_"),
        "{contact}"
    );
    assert!(
        contact.contains("&X-Anyreach-Agent-Id=agent_a&X-Anyreach-Agent-Version=2"),
        "{contact}"
    );
    assert!(contact.contains("X-Anyreach-Context="), "{contact}");
    assert!(r
        .header("X-Inroute-Decision-Id")
        .unwrap()
        .starts_with("dec_"));

    // National format with the trunk's country code reaches the same number.
    let (_, r) = call(&d, "5550000001", "").await;
    assert_eq!(r.status, 302, "{}", r.text);

    // Reject.
    d.call_org(
        &["+15550000002"],
        true,
        Some(json!({"workflow_definition": workflow(json!({"reject": true}))})),
    )
    .await;
    let (_, r) = call(&d, "+15550000002", "").await;
    assert_eq!(r.status, 603, "{}", r.text);
    assert_eq!(r.header("Reason"), Some("SIP;cause=603;text=\"rejected\""));

    // Workflow error with and without a fallback.
    let failing = workflow(json!({"agent_id": "{{ $error('boom') }}"}));
    d.call_org(
        &["+15550000003"],
        true,
        Some(json!({"workflow_definition": failing, "fallback_agent_id": "agent_fb"})),
    )
    .await;
    let (_, r) = call(&d, "+15550000003", "").await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert!(r
        .header("Contact")
        .unwrap()
        .contains("X-Anyreach-Agent-Id=agent_fb&X-Anyreach-Agent-Version=1"));
    d.call_org(
        &["+15550000004"],
        true,
        Some(json!({"workflow_definition": failing})),
    )
    .await;
    let (_, r) = call(&d, "+15550000004", "").await;
    assert_eq!(
        (r.status, r.header("Reason")),
        (603, Some("SIP;cause=603;text=\"workflow_error\""))
    );

    // Workflow timeout with and without a fallback (deadline 200 ms, wait 150 + 150).
    let slow = json!({"version": 1, "start": "in", "timeout_ms": 200, "steps": [
        {"id": "in", "type": "input", "next": "w1"}, {"id": "w1", "type": "wait", "ms": 150, "next": "w2"},
        {"id": "w2", "type": "wait", "ms": 150, "next": "out"},
        {"id": "out", "type": "output", "fields": {"agent_id": "agent_a"}}]});
    d.call_org(
        &["+15550000005"],
        true,
        Some(json!({"workflow_definition": slow, "fallback_agent_id": "agent_fb"})),
    )
    .await;
    let (_, r) = call(&d, "+15550000005", "").await;
    assert!(
        r.status == 302 && r.header("Contact").unwrap().contains("agent_fb"),
        "{}",
        r.text
    );
    d.call_org(
        &["+15550000006"],
        true,
        Some(json!({"workflow_definition": slow})),
    )
    .await;
    let (_, r) = call(&d, "+15550000006", "").await;
    assert_eq!(
        (r.status, r.header("Reason")),
        (603, Some("SIP;cause=603;text=\"workflow_timeout\""))
    );

    // No config: the number's own agent; without one, 603.
    d.call_org(&["+15550000007"], true, None).await;
    let (_, r) = call(&d, "+15550000007", "").await;
    assert!(
        r.status == 302 && r.header("Contact").unwrap().contains("agent_a"),
        "{}",
        r.text
    );
    d.call_org(&["+15550000008"], false, None).await;
    let (_, r) = call(&d, "+15550000008", "").await;
    assert_eq!(
        (r.status, r.header("Reason")),
        (603, Some("SIP;cause=603;text=\"no_config\""))
    );

    // enabled: false → the number's own agent, even though the workflow rejects.
    let key = d
        .call_org(
            &["+15550000009"],
            true,
            Some(json!({"workflow_definition": workflow(json!({"reject": true}))})),
        )
        .await;
    let r = d
        .req("PUT", "/core/inbound-routing-config")
        .token(&key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let (_, r) = call(&d, "+15550000009", "").await;
    assert_eq!(
        r.status, 302,
        "the change is used by the very next INVITE: {}",
        r.text
    );

    // Unknown number: 404. Loop: 482.
    let (_, r) = call(&d, "+19999999999", "").await;
    assert_eq!(r.status, 404);
    let (_, r) = call(&d, "+15550000001", "X-Inroute-Decision-Id: dec_abc\r\n").await;
    assert_eq!(r.status, 482);
    d.stop().await;
}

#[tokio::test]
async fn unknown_sources_are_forbidden() {
    let Some(d) = TestDaemon::start(Backend::Sqlite).await else {
        return;
    };
    // The only trunk accepts 10.0.0.0/8, so loopback is unknown.
    let org = d.org("Elsewhere").await;
    let key = d.admin_key(&org).await;
    d.req("POST", "/core/trunks")
        .token(&key)
        .json(json!({"name": "t", "inbound_addresses": ["10.0.0.0/8"]}))
        .send()
        .await;
    let (provisional, r) = call(&d, "+15550000001", "").await;
    assert_eq!(
        (provisional.as_slice(), r.status),
        ([100].as_slice(), 403),
        "{}",
        r.text
    );
    assert!(r.header("Reason").unwrap().contains("no trunk"));
    d.stop().await;

    // Configured to drop: no answer at all, not even 100.
    let Some(d) = TestDaemon::start_with(Backend::Sqlite, |c| {
        c.sip.unknown_source = inroute::config::UnknownSource::Drop
    })
    .await
    else {
        return;
    };
    let ua = Udp::new(d.sip_udp()).await;
    ua.send(&request(
        "INVITE",
        "+15550000001",
        "z9hG4bKdrop1",
        "drop1@test",
        "",
    ))
    .await;
    assert!(ua.recv(Duration::from_millis(500)).await.is_none());
    // OPTIONS keep-alives are still answered.
    ua.send(&request(
        "OPTIONS",
        "+15550000001",
        "z9hG4bKopt1",
        "opt1@test",
        "",
    ))
    .await;
    assert_eq!(ua.recv(WAIT).await.unwrap().status, 200);
    d.stop().await;
}

#[tokio::test]
async fn tls_with_a_certificate_made_at_test_time() {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("sip.crt"), dir.path().join("sip.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let Some(d) = TestDaemon::start_with(Backend::Sqlite, |c| {
        c.sip.tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.sip.tls_cert = Some(cert_path.clone());
        c.sip.tls_key = Some(key_path.clone());
    })
    .await
    else {
        return;
    };
    d.call_org(&["+15550000011"], true, None).await;
    let tls_addr = d.daemon.as_ref().unwrap().sip_tls[0];

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&request(
        "INVITE",
        "+15550000011",
        "z9hG4bKtls1",
        "tls1@test",
        "",
    ))
    .await
    .unwrap();
    let mut text = String::new();
    while !text.contains("SIP/2.0 302") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, tls.read(&mut buf))
            .await
            .expect("answer over TLS")
            .unwrap();
        assert!(n > 0, "closed early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.starts_with("SIP/2.0 100 Trying"), "{text}");
    assert!(text.contains("X-Anyreach-Agent-Id=agent_a"), "{text}");
    d.stop().await;
}

#[tokio::test]
async fn ipv6_listener_and_trunk() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback on this machine");
        return;
    }
    let Some(d) = TestDaemon::start_with(Backend::Sqlite, |c| {
        c.sip.udp = vec!["[::1]:0".parse().unwrap()]
    })
    .await
    else {
        return;
    };
    d.call_org_on("::1", &["+15550006666"], true, None).await;
    let socket = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    let ua = Udp {
        socket,
        server: d.sip_udp(),
    };
    ua.send(&request(
        "INVITE",
        "+15550006666",
        "z9hG4bKv6",
        "v6@test",
        "",
    ))
    .await;
    let responses = ua.until_final(WAIT).await;
    let last = responses.last().unwrap();
    assert_eq!(last.status, 302, "{}", last.text);
    assert!(
        last.header("Via").unwrap().contains("received=::1"),
        "{}",
        last.text
    );
    d.stop().await;
}

#[tokio::test]
async fn the_workflow_concurrency_cap_answers_503() {
    let Some(d) = TestDaemon::start_with(Backend::Sqlite, |c| c.routing.max_concurrent = 1).await
    else {
        return;
    };
    let slow = json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "w"}, {"id": "w", "type": "wait", "ms": 1000, "next": "out"},
        {"id": "out", "type": "output", "fields": {"agent_id": "agent_a"}}]});
    d.call_org(
        &["+15550000021"],
        true,
        Some(json!({"workflow_definition": slow})),
    )
    .await;
    let first = Udp::new(d.sip_udp()).await;
    first
        .send(&request(
            "INVITE",
            "+15550000021",
            "z9hG4bKcap1",
            "cap1@test",
            "",
        ))
        .await;
    assert_eq!(
        first.recv(WAIT).await.unwrap().status,
        100,
        "the first call is being routed"
    );
    let (_, r) = call(&d, "+15550000021", "").await;
    assert_eq!(
        (r.status, r.header("Retry-After")),
        (503, Some("5")),
        "{}",
        r.text
    );
    assert_eq!(first.until_final(WAIT).await.last().unwrap().status, 302);
    d.stop().await;
}
