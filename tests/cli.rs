//! The binary as an operator uses it: `serve --demo`, the README's curl
//! calls, signals, and the one-shot commands.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_inroute");

fn inroute(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env("INROUTE__LOG__FILTER", "warn");
    cmd
}

/// Runs a one-shot command; returns (exit code, stdout, stderr).
fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = inroute(dir, args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `serve --demo` on a free port; returns the child, admin base URL and key.
fn serve_demo(dir: &std::path::Path) -> (Child, String, String) {
    let mut child = inroute(
        dir,
        &[
            "serve",
            "--demo",
            "--admin-listen",
            "127.0.0.1:0",
            "--set",
            "sip.udp=127.0.0.1:0",
            "--set",
            "sip.tcp=127.0.0.1:0",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut base, mut key) = (None, None);
    while base.is_none() || key.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("demo banner");
        if let Some(url) = line.strip_prefix("Admin API: ") {
            base = Some(url.trim().to_owned());
        }
        if let Some(k) = line.split_whitespace().find(|w| w.starts_with("ak_")) {
            key = Some(k.to_owned());
        }
    }
    (child, base.unwrap(), key.unwrap())
}

fn sigterm(child: &mut Child) -> i32 {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}

#[tokio::test]
async fn demo_serves_the_readme_flow_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, key) = serve_demo(dir.path());
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).bearer_auth(&key).send();

    let config: Value = get("/core/inbound-routing-config")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["organization_id"], json!("org_demo"));
    assert_eq!(config["enabled"], json!(true));
    let numbers: Value = get("/core/phone-numbers")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(numbers["items"].as_array().unwrap().len(), 4);
    let agents: Value = get("/core/agents").await.unwrap().json().await.unwrap();
    assert_eq!(agents["items"].as_array().unwrap().len(), 2);
    let trunks: Value = get("/core/trunks").await.unwrap().json().await.unwrap();
    assert_eq!(
        trunks["items"][0]["inbound_addresses"],
        json!(["127.0.0.0/8", "::1/128"])
    );
    for agent in ["agent_support", "agent_sales"] {
        let versions: Value = get(&format!("/core/agents/{agent}/versions"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            versions["items"][0]["status"],
            json!("published"),
            "{agent}"
        );
    }

    // The README's change: disable routing.
    let r = http
        .put(format!("{base}/core/inbound-routing-config"))
        .bearer_auth(&key)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sigterm(&mut child), 0, "SIGTERM drains and exits 0");

    // A second start keeps the data, creates nothing twice, and replaces the key.
    let (mut child, base, key2) = serve_demo(dir.path());
    assert_ne!(key, key2);
    let old = http
        .get(format!("{base}/core/agents"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the previous demo key is revoked");
    let get = |path: &str| http.get(format!("{base}{path}")).bearer_auth(&key2).send();
    let config: Value = get("/core/inbound-routing-config")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["enabled"], json!(false), "changes survive a restart");
    let numbers: Value = get("/core/phone-numbers")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(numbers["items"].as_array().unwrap().len(), 4);
    assert_eq!(sigterm(&mut child), 0);
    assert!(
        dir.path().join("data/inroute.db").exists(),
        "SQLite file under ./data/"
    );
}

#[test]
fn operator_commands_manage_orgs_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(run(d, &["migrate"]).0, 0);
    let (code, org, _) = run(d, &["org", "create", "Acme Corp"]);
    assert_eq!(code, 0);
    let org = org.trim().to_owned();
    assert!(org.starts_with("org_"));
    assert!(run(d, &["org", "list"]).1.contains("Acme Corp"));

    let (code, key, err) = run(
        d,
        &[
            "token",
            "create",
            "--org",
            &org,
            "--scope",
            "agents:read,trunks:manage",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("ak_") && key.contains('.'));
    assert!(err.contains("shown only once"));
    let id = key
        .trim_start_matches("ak_")
        .split('.')
        .next()
        .unwrap()
        .to_owned();

    let (_, listing, _) = run(d, &["token", "list", "--org", &org]);
    assert!(listing.contains(&id) && listing.contains("active") && listing.contains("agents:read"));
    assert!(
        !listing.contains(key.split('.').nth(1).unwrap()),
        "secrets are never listed"
    );
    assert_eq!(run(d, &["token", "revoke", &id]).0, 0);
    assert!(run(d, &["token", "list", "--org", &org])
        .1
        .contains("revoked"));
    assert_ne!(
        run(d, &["token", "revoke", &id]).0,
        0,
        "revoking twice fails"
    );

    let (code, _, err) = run(
        d,
        &["token", "create", "--org", &org, "--scope", "agents:write"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("unknown scope"), "{err}");
    let (code, _, err) = run(
        d,
        &["token", "create", "--org", "org_nope", "--scope", "all"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");

    let (code, user, _) = run(d, &["user", "create", "Ann"]);
    assert_eq!(code, 0);
    let user = user.trim().to_owned();
    assert_eq!(
        run(d, &["user", "add-to-org", "--user", &user, "--org", &org]).0,
        0
    );
    let (code, pat, _) = run(d, &["token", "create", "--user", &user, "--scope", "all"]);
    assert_eq!(code, 0);
    assert!(pat.trim().starts_with("pat_"));
}

#[test]
fn check_config_reports_every_problem_and_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(dir.path(), &["check-config"]);
    assert_eq!((code, out.trim()), (0, "configuration is valid"));

    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[admin]\nlisten = \"nowhere\"\nbogus = 1\n[nope]\nudp = []\n",
    )
    .unwrap();
    let out = inroute(
        dir.path(),
        &["check-config", "--config", file.to_str().unwrap()],
    )
    .env("INROUTE__DATABASE__MAX_CONNECTIONS", "lots")
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    for expected in [
        "admin.listen",
        "admin.bogus: unknown key",
        "nope: unknown key",
        "database.max_connections",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "check-config opens no database"
    );

    let (code, _, err) = run(
        dir.path(),
        &["check-config", "--config", "/nonexistent.toml"],
    );
    assert_eq!(code, 78, "{err}");
}

#[test]
fn unreachable_database_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(
        dir.path(),
        &[
            "serve",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "--set",
            "database.acquire_timeout_ms=2000",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("could not open the database"), "{err}");
}

#[test]
fn workflow_check_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        json!({"workflow_definition": {"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "o"},
        {"id": "o", "type": "output", "fields": {"agent_id": "a"}}]}})
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = run(dir.path(), &["workflow", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: 2 steps"), "{out}");

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "x"},
        {"id": "c", "type": "app"}]})
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = run(dir.path(), &["workflow", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("$.steps[0].next: no step has id \"x\""),
        "{out}"
    );
    assert!(
        out.contains("$.steps[1].type: `app` steps are not supported"),
        "{out}"
    );
    assert!(err.contains("2 problem(s)"), "{err}");
}

#[tokio::test]
async fn sigkill_loses_nothing_committed_and_sqlite_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, key) = serve_demo(dir.path());
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{base}/core/inbound-routing-config"))
        .bearer_auth(&key)
        .json(&json!({"fallback_agent_id": "agent_sales"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, base, key) = serve_demo(dir.path());
    let config: Value = http
        .get(format!("{base}/core/inbound-routing-config"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config["fallback_agent_id"],
        json!("agent_sales"),
        "the committed change survived SIGKILL"
    );
    assert_eq!(sigterm(&mut child), 0);
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.path().join("data/inroute.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}
