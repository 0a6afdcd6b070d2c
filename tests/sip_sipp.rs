//! Every scenario in `sipp-scenarios/` driven by the real `sipp` binary
//! (Debian `sip-tester`) against a daemon on port 0, over UDP and TCP.
//! `scripts/test` installs SIPp and sets `INROUTE_REQUIRE_SIPP=1`; without
//! SIPp and that variable the test says it skipped.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::{Backend, TestDaemon};

fn sipp_available() -> bool {
    let found = Command::new("sipp").arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var("INROUTE_REQUIRE_SIPP").map_or(true, |v| v != "1"),
            "INROUTE_REQUIRE_SIPP=1 but `sipp` is not installed"
        );
        eprintln!("SKIPPED: sipp not installed (scripts/test installs it)");
    }
    found
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a scenario; returns (exit code, stdout+stderr, messages trace).
fn sipp(
    scenario: &str,
    target: std::net::SocketAddr,
    transport: &str,
    extra: &[&str],
) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp-scenarios")
        .join(scenario);
    let port = free_port().to_string();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir.path())
        .arg("-sf")
        .arg(&path)
        .args([
            "-t",
            transport,
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
        ])
        .args(["-trace_err", "-trace_screen"])
        .args(extra)
        .arg(target.to_string());
    let out = cmd.output().expect("sipp runs");
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        log.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    (out.status.code().unwrap_or(-1), log)
}

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
