//! Running the real `sipp` binary against a daemon.

use std::path::Path;
use std::process::Command;

pub fn sipp_available() -> bool {
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

pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a scenario; returns (exit code, stdout+stderr, messages trace).
pub fn sipp(
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
