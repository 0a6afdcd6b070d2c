//! Every scenario in `sipp-scenarios/` driven by the real `sipp` binary
//! (Debian `sip-tester`) against a daemon on port 0, over UDP and TCP.
//! `scripts/test` installs SIPp and sets `INROUTE_REQUIRE_SIPP=1`; without
//! SIPp and that variable the test says it skipped.

mod support;

use std::path::Path;

use serde_json::json;
use support::sipp::{sipp, sipp_available};
use support::{Backend, TestDaemon};

fn demo_like_workflow() -> serde_json::Value {
    json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "by_number"},
        {"id": "by_number", "type": "condition", "branches": [
            {"name": "reject", "when": "{{ input.called_number = '+15550100003' }}", "next": "decline"},
            {"name": "slow", "when": "{{ input.called_number = '+15550100004' }}", "next": "slow"}],
         "default": "agent"},
        {"id": "decline", "type": "output", "fields": {"reject": true}},
        {"id": "slow", "type": "wait", "ms": 2000, "next": "agent"},
        {"id": "agent", "type": "output", "fields": {"agent_id": "agent_a"}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_over_udp_and_tcp() {
    if !sipp_available() {
        return;
    }
    let Some(d) = TestDaemon::start(Backend::Sqlite).await else {
        return;
    };
    d.call_org(
        &[
            "+15550100001",
            "+15550100002",
            "+15550100003",
            "+15550100004",
        ],
        true,
        Some(json!({"workflow_definition": demo_like_workflow()})),
    )
    .await;
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp-scenarios/calls.csv");
    let csv = csv.to_str().unwrap();
    for (transport, target) in [("u1", d.sip_udp()), ("t1", d.sip_tcp())] {
        let runs: Vec<(&str, Vec<&str>)> = vec![
            ("redirect.xml", vec!["-m", "1"]),
            ("reject.xml", vec!["-s", "+15550100003", "-m", "1"]),
            ("cancel.xml", vec!["-s", "+15550100004", "-m", "1"]),
            ("options.xml", vec!["-m", "1"]),
            ("load.xml", vec!["-inf", csv, "-r", "50", "-m", "100"]),
        ];
        for (scenario, args) in runs {
            let (code, log) =
                tokio::task::block_in_place(|| sipp(scenario, target, transport, &args));
            assert_eq!(code, 0, "{scenario} over {transport} failed:\n{log}");
            let successful = log
                .lines()
                .find(|l| l.contains("Successful call"))
                .unwrap_or_default()
                .to_owned();
            let failed = log
                .lines()
                .find(|l| l.contains("Failed call"))
                .unwrap_or_default()
                .to_owned();
            assert!(
                failed
                    .split_whitespace()
                    .filter_map(|w| w.parse::<u64>().ok())
                    .all(|n| n == 0),
                "{scenario}: {failed}\n{log}"
            );
            assert!(
                !successful.is_empty(),
                "{scenario}: no statistics in\n{log}"
            );
        }
    }
    d.stop().await;
}
