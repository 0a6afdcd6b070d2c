//! Operating the daemon: the decision log over SIP and the API, drain.

mod support;

use std::time::Duration;

use inroute::shutdown::ShutdownKind;
use serde_json::{json, Value};
use support::sip::{request, Udp};
use support::{Backend, TestDaemon};

const WAIT: Duration = Duration::from_secs(5);

fn workflow() -> Value {
    json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "c"},
        {"id": "c", "type": "condition", "branches": [
            {"name": "slow", "when": "{{ input.called_number = '+15550000102' }}", "next": "w"}], "default": "out"},
        {"id": "w", "type": "wait", "ms": 800, "next": "out"},
        {"id": "out", "type": "output", "fields": {"agent_id": "agent_a", "initial_context": "hello"}}]})
}

async fn decisions_are_logged_and_scoped(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let key = d
        .call_org(
            &["+15550000101"],
            true,
            Some(json!({"workflow_definition": workflow()})),
        )
        .await;
    let other = d.call_org(&["+15550000199"], true, None).await;
    let ua = Udp::new(d.sip_udp()).await;
    ua.send(&request(
        "INVITE",
        "+15550000101",
        "z9hG4bKlog1",
        "log-call-1@test",
        "",
    ))
    .await;
    let last = ua.until_final(WAIT).await.pop().unwrap();
    assert_eq!(last.status, 302);
    let id = last.header("X-Inroute-Decision-Id").unwrap().to_owned();

    // Fetchable at once by decision id (from memory), with its trace.
    let r = d
        .req("GET", &format!("/core/inbound-routing-decisions/{id}"))
        .token(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (&r.body["call_id"], &r.body["outcome"], &r.body["reason"]),
        (
            &json!("log-call-1@test"),
            &json!("redirect"),
            &json!("agent")
        )
    );
    assert_eq!(
        (
            &r.body["agent_id"],
            &r.body["agent_version"],
            &r.body["sip_status"]
        ),
        (&json!("agent_a"), &json!(2), &json!(302))
    );
    assert_eq!(r.body["initial_context"], json!("hello"));
    assert_eq!(r.body["trace"][1]["step"], json!("c"));
    assert_eq!(
        d.req("GET", &format!("/core/inbound-routing-decisions/{id}"))
            .token(&other)
            .send()
            .await
            .status,
        404,
        "invisible to other organizations"
    );

    // Unknown numbers are decisions too (visible to the trunk's organization).
    ua.send(&request(
        "INVITE",
        "+15550000404",
        "z9hG4bKlog2",
        "log-call-2@test",
        "",
    ))
    .await;
    assert_eq!(ua.until_final(WAIT).await.pop().unwrap().status, 404);

    // Once written, by Call-ID and other filters.
    d.daemon
        .as_ref()
        .unwrap()
        .decisions
        .written_at_least(2)
        .await;
    let r = d
        .req(
            "GET",
            "/core/inbound-routing-decisions?call_id=log-call-1@test",
        )
        .token(&key)
        .send()
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{r:?}");
    assert_eq!(r.body["items"][0]["id"], json!(id));
    assert_eq!(r.body["items"][0]["trace"][0]["type"], json!("input"));
    let r = d
        .req(
            "GET",
            "/core/inbound-routing-decisions?outcome=redirect&caller_number=%2B14155550123",
        )
        .token(&key)
        .send()
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{r:?}");
    let r = d
        .req(
            "GET",
            "/core/inbound-routing-decisions?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z",
        )
        .token(&key)
        .send()
        .await;
    assert_eq!(r.body["items"], json!([]));
    assert_eq!(
        d.req("GET", "/core/inbound-routing-decisions")
            .token(&other)
            .send()
            .await
            .body["items"],
        json!([])
    );
    assert_eq!(
        d.req("GET", "/core/inbound-routing-decisions?since=yesterday")
            .token(&key)
            .send()
            .await
            .status,
        400
    );
    d.stop().await;
}

async fn drain_finishes_calls_in_flight_and_refuses_new_ones(backend: Backend) {
    let Some(mut d) = TestDaemon::start(backend).await else {
        return;
    };
    d.call_org(
        &["+15550000102"],
        true,
        Some(json!({"workflow_definition": workflow()})),
    )
    .await;
    let slow = Udp::new(d.sip_udp()).await;
    slow.send(&request(
        "INVITE",
        "+15550000102",
        "z9hG4bKdrain1",
        "drain1@test",
        "",
    ))
    .await;
    assert_eq!(slow.recv(WAIT).await.unwrap().status, 100);

    let daemon = d.daemon.take().unwrap();
    let sip = daemon.sip_udp[0];
    let admin = d.url("/readyz");
    let decisions = daemon.decisions.clone();
    let stopping = tokio::spawn(daemon.stop(ShutdownKind::Drain));
    // Readiness drops and new INVITEs get 503 while the slow call finishes.
    let mut ready = 200;
    while ready == 200 {
        ready = reqwest::get(&admin)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(503);
        tokio::task::yield_now().await;
    }
    assert_eq!(ready, 503);
    let late = Udp::new(sip).await;
    late.send(&request(
        "INVITE",
        "+15550000102",
        "z9hG4bKdrain2",
        "drain2@test",
        "",
    ))
    .await;
    let refused = late.recv(WAIT).await.unwrap();
    assert_eq!(
        (refused.status, refused.header("Retry-After")),
        (503, Some("5"))
    );
    assert_eq!(
        slow.recv(WAIT).await.unwrap().status,
        302,
        "the call in flight gets its 302"
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("stopped within the grace period")
        .unwrap();
    assert_eq!(
        decisions.stats().written(),
        1,
        "the decision was flushed before exit"
    );
}

on_both_backends!(
    decisions_are_logged_and_scoped,
    drain_finishes_calls_in_flight_and_refuses_new_ones
);

/// `name{labels}` → value, for every sample line; panics on a malformed line.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name_ok = series
            .split('{')
            .next()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        assert!(
            name_ok && (!series.contains('{') || series.ends_with('}')),
            "bad series {line:?}"
        );
        samples.insert(
            series.to_owned(),
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value {line:?}")),
        );
    }
    samples
}

#[tokio::test]
async fn metrics_parse_and_count_the_calls_made() {
    let Some(d) = TestDaemon::start(Backend::Sqlite).await else {
        return;
    };
    let reject = json!({"version": 1, "start": "in", "steps": [{"id": "in", "type": "input", "next": "o"},
                        {"id": "o", "type": "output", "fields": {"reject": true}}]});
    d.call_org(
        &["+15550000301"],
        true,
        Some(json!({"workflow_definition": reject})),
    )
    .await;
    let scrape = || async {
        let text = reqwest::get(d.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        parse_prometheus(&text)
    };
    let series = "inroute_calls_total{outcome=\"reject\",reason=\"rejected\"}";
    let before = scrape().await.get(series).copied().unwrap_or(0.0);
    let ua = Udp::new(d.sip_udp()).await;
    for n in 0..3 {
        ua.send(&request(
            "INVITE",
            "+15550000301",
            &format!("z9hG4bKm{n}"),
            &format!("m{n}@test"),
            "",
        ))
        .await;
        assert_eq!(ua.until_final(WAIT).await.pop().unwrap().status, 603);
    }
    let after = scrape().await;
    assert_eq!(after[series] - before, 3.0);
    for name in [
        "inroute_decision_seconds_count",
        "inroute_workflow_run_seconds_count",
        "inroute_sip_transactions",
        "inroute_decision_log_queue_depth",
        "inroute_snapshot_reloads_total",
        "inroute_workflow_concurrency_limit",
    ] {
        assert!(after.contains_key(name), "{name} missing");
    }
    assert!(after["inroute_decision_seconds_count"] >= 3.0);
    d.stop().await;
}
