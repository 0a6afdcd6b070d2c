//! The workflow engine through its public API: every step type, every row of
//! the resolution rules, http steps against a local server, hostile input.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use inroute::routing::{
    self, decide, decide_without_workflow, Action, AgentDirectory, AgentRef, CallInput, Limits,
    Reason, ResolvedAgent, RunEnv, RunError, Unresolved,
};
use serde_json::{json, Value};

fn input(caller: &str, called: &str, at: &str) -> CallInput {
    CallInput {
        caller_number: caller.into(),
        called_number: called.into(),
        trunk_id: "trk_1".into(),
        organization_id: "org_1".into(),
        timestamp: at.parse().unwrap(),
        sip_headers: json!({"User-Agent": "carrier/1.0"})
            .as_object()
            .unwrap()
            .clone(),
    }
}

fn env() -> RunEnv {
    RunEnv {
        http: routing::HttpClient::new(64 * 1024).unwrap(),
        secrets: Arc::new(HashMap::from([("crm".to_owned(), "tok3n".to_owned())])),
        expression_timeout_ms: 50,
    }
}

/// `in → <steps> ...`; the first listed step follows the input.
fn def(steps: Value) -> Value {
    let first = steps[0]["id"].as_str().unwrap().to_owned();
    let mut all = vec![json!({"id": "in", "type": "input", "next": first})];
    all.extend(steps.as_array().unwrap().iter().cloned());
    json!({"version": 1, "start": "in", "steps": all})
}

async fn run(definition: Value, input: &CallInput) -> routing::Run {
    let plan =
        routing::compile(&definition, &Limits::default()).unwrap_or_else(|p| panic!("{p:?}"));
    routing::run(&plan, input, &env()).await
}

fn agent_of(run: &routing::Run) -> Option<String> {
    run.result.as_ref().ok().and_then(|o| o.agent_id.clone())
}

const NOON_UTC: &str = "2026-12-02T12:00:00Z";

#[tokio::test]
async fn each_step_type_does_its_job() {
    let call = input("+14155550100", "+15550100002", NOON_UTC);
    // output: expressions keep types; mixed text is a string; metadata is a template tree.
    let r = run(
        def(json!([{"id": "out", "type": "output", "fields": {
        "agent_id": "{{ 'agent_' & $substring(input.called_number, 8) }}",
        "version": "{{ 1 + 1 }}",
        "initial_context": "Caller {{ input.caller_number }} at {{ $now() }}",
        "custom_metadata": {"ua": "{{ input.sip_headers.`User-Agent` }}", "n": 1},
        "skip_pre_conversation_workflow": true, "unknown_extra": 1}}])),
        &call,
    )
    .await;
    let out = r.result.unwrap();
    assert_eq!(out.agent_id.as_deref(), Some("agent_0002"));
    assert_eq!(out.version, Some(2));
    assert_eq!(
        out.initial_context,
        "Caller +14155550100 at 2026-12-02T12:00:00.000Z"
    );
    assert_eq!(
        out.custom_metadata,
        json!({"ua": "carrier/1.0", "n": 1}).as_object().cloned()
    );
    assert!(out.skip_pre_conversation_workflow);
    assert!(
        r.trace
            .last()
            .unwrap()
            .result
            .as_deref()
            .unwrap()
            .contains("unknown_extra"),
        "{:?}",
        r.trace
    );

    // condition: ordered, first true wins, else default; note passes through.
    let cond = def(json!([
        {"id": "c", "type": "condition", "branches": [
            {"name": "vip", "when": "{{ $contains(input.caller_number, '555') }}", "next": "n"},
            {"name": "also", "when": true, "next": "b"}], "default": "d"},
        {"id": "n", "type": "note", "text": "vip path", "next": "a"},
        {"id": "a", "type": "output", "fields": {"agent_id": "vip"}},
        {"id": "b", "type": "output", "fields": {"agent_id": "second"}},
        {"id": "d", "type": "output", "fields": {"agent_id": "default"}}]));
    let r = run(cond.clone(), &call).await;
    assert_eq!(agent_of(&r).as_deref(), Some("vip"));
    let steps: Vec<(&str, &str, Option<&str>)> = r
        .trace
        .iter()
        .map(|t| (t.step.as_str(), t.kind, t.result.as_deref()))
        .collect();
    assert_eq!(
        steps[..3],
        [
            ("in", "input", None),
            ("c", "condition", Some("vip")),
            ("n", "note", None)
        ]
    );
    let r = run(cond, &input("+441", "+1", NOON_UTC)).await;
    assert_eq!(agent_of(&r).as_deref(), Some("second"));

    // schedule: open / closed at the call's timestamp, in the zone.
    let sched = def(json!([
        {"id": "h", "type": "schedule", "timezone": "America/New_York",
         "open": {"mon-fri": ["09:00-17:30"]}, "closed_dates": ["2026-12-25"],
         "branches": {"open": "o", "closed": "x"}},
        {"id": "o", "type": "output", "fields": {"agent_id": "open"}},
        {"id": "x", "type": "output", "fields": {"reject": true}}]));
    let at = |t: &str| input("+1", "+1", t);
    assert_eq!(
        agent_of(&run(sched.clone(), &at("2026-12-02T15:00:00Z")).await).as_deref(),
        Some("open"),
        "Wed 10:00 EST"
    );
    let closed = run(sched.clone(), &at("2026-12-02T12:00:00Z")).await;
    assert!(closed.result.as_ref().unwrap().reject, "Wed 07:00 EST");
    assert_eq!(closed.trace[1].result.as_deref(), Some("closed"));
    assert!(
        run(sched.clone(), &at("2026-12-25T15:00:00Z"))
            .await
            .result
            .unwrap()
            .reject,
        "closed date"
    );
    assert!(
        run(sched, &at("2026-12-05T15:00:00Z"))
            .await
            .result
            .unwrap()
            .reject,
        "Saturday"
    );

    // split: sticky per caller, weighted.
    let split = def(json!([
        {"id": "ab", "type": "split", "key": "{{ input.caller_number }}", "branches": [
            {"name": "a", "weight": 80, "next": "a"}, {"name": "b", "weight": 20, "next": "b"}]},
        {"id": "a", "type": "output", "fields": {"agent_id": "a"}},
        {"id": "b", "type": "output", "fields": {"agent_id": "b"}}]));
    let plan = routing::compile(&split, &Limits::default()).unwrap();
    let mut a = 0;
    for n in 0..2000 {
        let call = input(&format!("+1415555{n:04}"), "+1", NOON_UTC);
        let first = agent_of(&routing::run(&plan, &call, &env()).await);
        assert_eq!(
            agent_of(&routing::run(&plan, &call, &env()).await),
            first,
            "sticky"
        );
        a += usize::from(first.as_deref() == Some("a"));
    }
    assert!((1500..1700).contains(&a), "80% arm got {a} of 2000");
}

#[tokio::test(start_paused = true)]
async fn wait_steps_wait_and_count_against_the_deadline() {
    let call = input("+1", "+1", NOON_UTC);
    let ok = def(json!([{"id": "w", "type": "wait", "ms": 500, "next": "o"},
                        {"id": "o", "type": "output", "fields": {"agent_id": "a"}}]));
    let started = tokio::time::Instant::now();
    let r = run(ok, &call).await;
    assert_eq!(agent_of(&r).as_deref(), Some("a"));
    assert!(started.elapsed() >= Duration::from_millis(500));
    // Two waits that together pass a 1 s deadline: timeout.
    let slow = json!({"version": 1, "start": "in", "timeout_ms": 1000, "steps": [
        {"id": "in", "type": "input", "next": "w1"},
        {"id": "w1", "type": "wait", "ms": 600, "next": "w2"},
        {"id": "w2", "type": "wait", "ms": 600, "next": "o"},
        {"id": "o", "type": "output", "fields": {"agent_id": "a"}}]});
    let r = run(slow, &call).await;
    assert_eq!(r.result.unwrap_err(), RunError::Timeout(1000));
    assert_eq!(r.trace.len(), 2, "the trace keeps what ran: {:?}", r.trace);
}

/// Agents: `a` (v1, v2 published; v3 draft), `fb` (v1), `draft_only` (none published).
struct Directory;

impl AgentDirectory for Directory {
    fn resolve(&self, agent_id: &str, version: Option<i64>) -> Result<ResolvedAgent, Unresolved> {
        let published: &[i64] = match agent_id {
            "a" => &[1, 2],
            "fb" => &[1],
            "draft_only" => &[],
            _ => return Err(Unresolved::UnknownAgent),
        };
        let v = match version {
            Some(v) if published.contains(&v) => v,
            Some(_) => return Err(Unresolved::UnpublishedVersion),
            None => *published.last().ok_or(Unresolved::UnpublishedVersion)?,
        };
        Ok(ResolvedAgent {
            version: v,
            sip_uri: None,
        })
    }
}

async fn output_of(fields: Value) -> Result<routing::Output, RunError> {
    run(
        def(json!([{"id": "o", "type": "output", "fields": fields}])),
        &input("+1", "+1", NOON_UTC),
    )
    .await
    .result
}

type Row<'a> = (
    &'a str,
    Result<routing::Output, RunError>,
    Option<&'a AgentRef>,
    Action,
    Reason,
    Option<(&'a str, i64)>,
    bool,
);

#[tokio::test]
async fn resolution_follows_the_spec_row_by_row() {
    let fb = AgentRef {
        agent_id: "fb".into(),
        version: None,
    };
    let gone = AgentRef {
        agent_id: "deleted".into(),
        version: None,
    };
    let error = Err(RunError::Step {
        step: "crm".into(),
        message: "boom".into(),
    });
    let rows: Vec<Row<'_>> = vec![
        (
            "reject",
            output_of(json!({"reject": true, "agent_id": "a"})).await,
            Some(&fb),
            Action::Reject,
            Reason::Rejected,
            None,
            false,
        ),
        (
            "agent latest",
            output_of(json!({"agent_id": "a"})).await,
            Some(&fb),
            Action::Redirect,
            Reason::Agent,
            Some(("a", 2)),
            false,
        ),
        (
            "agent pinned",
            output_of(json!({"agent_id": "a", "version": 1})).await,
            None,
            Action::Redirect,
            Reason::Agent,
            Some(("a", 1)),
            false,
        ),
        (
            "error → fallback",
            error.clone(),
            Some(&fb),
            Action::Redirect,
            Reason::WorkflowError,
            Some(("fb", 1)),
            true,
        ),
        (
            "error, no fallback",
            error,
            None,
            Action::Reject,
            Reason::WorkflowError,
            None,
            false,
        ),
        (
            "timeout → fallback",
            Err(RunError::Timeout(3000)),
            Some(&fb),
            Action::Redirect,
            Reason::WorkflowTimeout,
            Some(("fb", 1)),
            true,
        ),
        (
            "invalid output",
            output_of(json!({"agent_id": "{{ 5 }}"})).await,
            Some(&fb),
            Action::Redirect,
            Reason::InvalidOutput,
            Some(("fb", 1)),
            true,
        ),
        (
            "unknown agent",
            output_of(json!({"agent_id": "nobody"})).await,
            Some(&fb),
            Action::Redirect,
            Reason::UnknownAgent,
            Some(("fb", 1)),
            true,
        ),
        (
            "unpublished version",
            output_of(json!({"agent_id": "a", "version": 3})).await,
            Some(&fb),
            Action::Redirect,
            Reason::UnpublishedVersion,
            Some(("fb", 1)),
            true,
        ),
        (
            "nothing published",
            output_of(json!({"agent_id": "draft_only"})).await,
            None,
            Action::Reject,
            Reason::UnpublishedVersion,
            None,
            false,
        ),
        (
            "no agent in output",
            output_of(json!({"initial_context": "hi"})).await,
            Some(&fb),
            Action::Redirect,
            Reason::NoAgentInOutput,
            Some(("fb", 1)),
            true,
        ),
        (
            "fallback unusable",
            output_of(json!({})).await,
            Some(&gone),
            Action::Reject,
            Reason::NoAgentInOutput,
            None,
            false,
        ),
    ];
    for (name, result, fallback, action, reason, agent, used_fallback) in rows {
        let d = decide(&result, fallback, &Directory);
        assert_eq!((d.action, d.reason), (action, reason), "{name}: {d:?}");
        assert_eq!(d.agent_id.as_deref().zip(d.version), agent, "{name}");
        assert_eq!(d.fallback, used_fallback, "{name}");
        assert_eq!(
            d.sip_status,
            if action == Action::Redirect { 302 } else { 603 },
            "{name}"
        );
    }
    let assigned = AgentRef {
        agent_id: "a".into(),
        version: Some(1),
    };
    let d = decide_without_workflow(None, Some(&assigned), &Directory);
    assert_eq!(
        (d.action, d.reason, d.version),
        (Action::Redirect, Reason::NumberAssignment, Some(1))
    );
    let d = decide_without_workflow(Some(false), Some(&assigned), &Directory);
    assert_eq!(
        (d.action, d.reason),
        (Action::Redirect, Reason::NumberAssignment)
    );
    let d = decide_without_workflow(None, None, &Directory);
    assert_eq!((d.action, d.reason), (Action::Reject, Reason::NoConfig));
    let d = decide_without_workflow(Some(false), None, &Directory);
    assert_eq!((d.action, d.reason), (Action::Reject, Reason::Disabled));
    let d = decide_without_workflow(None, Some(&gone), &Directory);
    assert_eq!((d.action, d.reason), (Action::Reject, Reason::NoConfig));
    let d = decide(
        &output_of(json!({"agent_id": "a", "initial_context": "VIP"})).await,
        None,
        &Directory,
    );
    assert_eq!(
        d.initial_context, "VIP",
        "context rides with the chosen agent"
    );
}

/// A local HTTP server standing in for a CRM.
async fn crm() -> SocketAddr {
    let app = Router::new()
        .route(
            "/lookup",
            get(|headers: HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                axum::Json(json!({"tier": "gold", "name": "Ann", "auth": auth}))
            }),
        )
        .route(
            "/error",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "down"})),
                )
            }),
        )
        .route(
            "/slow",
            // Never answers: the step timeout or the deadline must end the wait.
            get(std::future::pending::<&'static str>),
        )
        .route("/huge", get(|| async { "x".repeat(200 * 1024) }))
        .route(
            "/badjson",
            get(|| async { ([("content-type", "application/json")], "{not json") }),
        )
        .route("/text", get(|| async { "plain words" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn http_def(url: &str, timeout_ms: u64, deadline_ms: u64, then: Value) -> Value {
    json!({"version": 1, "start": "in", "timeout_ms": deadline_ms, "steps": [
        {"id": "in", "type": "input", "next": "crm"},
        {"id": "crm", "type": "http", "method": "GET", "url": url, "timeout_ms": timeout_ms,
         "headers": {"Authorization": "Bearer {{ $secret('crm') }}"},
         "query": {"phone": "{{ input.caller_number }}"}, "next": "c"},
        {"id": "c", "type": "condition", "branches": [{"name": "hit", "when": then, "next": "vip"}], "default": "main"},
        {"id": "vip", "type": "output", "fields": {"agent_id": "vip", "initial_context": "{{ 'VIP ' & crm.body.name }}",
                                                   "custom_metadata": {"auth": "{{ crm.body.auth }}"}}},
        {"id": "main", "type": "output", "fields": {"agent_id": "main"}}]})
}

#[tokio::test]
async fn http_steps_against_a_local_server() {
    let addr = crm().await;
    let call = input("+14155550100", "+1", NOON_UTC);
    let url = |path: &str| format!("http://{addr}{path}");

    let r = run(
        http_def(
            &url("/lookup"),
            1000,
            3000,
            json!("{{ crm.body.tier = 'gold' }}"),
        ),
        &call,
    )
    .await;
    let out = r.result.unwrap();
    assert_eq!(
        (out.agent_id.as_deref(), out.initial_context.as_str()),
        (Some("vip"), "VIP Ann")
    );
    assert_eq!(
        out.custom_metadata.unwrap()["auth"],
        json!("Bearer tok3n"),
        "secrets reach headers"
    );
    assert_eq!(r.trace[1].result.as_deref(), Some("status 200"));

    let r = run(
        http_def(
            &url("/error"),
            1000,
            3000,
            json!("{{ crm.status_code = 500 and crm.body.error = 'down' }}"),
        ),
        &call,
    )
    .await;
    assert_eq!(
        agent_of(&r).as_deref(),
        Some("vip"),
        "a 500 is data: {:?}",
        r.trace
    );

    let r = run(
        http_def(
            &url("/text"),
            1000,
            3000,
            json!("{{ crm.body = 'plain words' }}"),
        ),
        &call,
    )
    .await;
    assert_eq!(
        agent_of(&r).as_deref(),
        Some("vip"),
        "non-JSON bodies are strings"
    );

    for (path, expect) in [
        ("/huge", "larger than"),
        ("/badjson", "JSON"),
        ("/slow", "within 200 ms"),
    ] {
        let r = run(http_def(&url(path), 200, 3000, json!(true)), &call).await;
        match r.result {
            Err(RunError::Step { step, message }) => {
                assert_eq!(step, "crm");
                assert!(message.contains(expect), "{path}: {message}");
            }
            other => panic!("{path}: {other:?}"),
        }
        assert!(r.trace.last().unwrap().error.is_some());
    }

    // Slower than the whole deadline: the run ends at the deadline.
    let started = tokio::time::Instant::now();
    let r = run(http_def(&url("/slow"), 400, 400, json!(true)), &call).await;
    assert!(
        matches!(
            r.result,
            Err(RunError::Timeout(400)) | Err(RunError::Step { .. })
        ),
        "{:?}",
        r.result
    );
    assert!(
        started.elapsed() < Duration::from_millis(400 + 600),
        "ended within the deadline plus a margin"
    );

    // A connection error is a failure.
    let r = run(
        http_def("http://127.0.0.1:1/x", 500, 3000, json!(true)),
        &call,
    )
    .await;
    assert!(
        matches!(r.result, Err(RunError::Step { .. })),
        "{:?}",
        r.result
    );
}

fn problems(definition: &Value) -> Vec<String> {
    routing::compile(definition, &Limits::default())
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.path)
        .collect()
}

#[test]
fn validation_reports_every_problem_with_its_path() {
    let d = json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "c"},
        {"id": "c", "type": "condition", "branches": [{"when": "{{ input.caller_number = }}", "next": "o"}], "default": "nowhere"},
        {"id": "o", "type": "output", "fields": {"agent_id": 5, "version": "three", "reject": "{{ true }}"}},
        {"id": "o", "type": "output", "fields": {}},
        {"id": "x", "type": "code"},
        {"id": "y", "type": "teleport"},
        {"id": "h", "type": "http", "url": "ftp://x", "method": "BREW", "next": "o", "timeout_ms": 99999},
        {"id": "w", "type": "wait", "ms": 5000, "next": "o"},
        {"id": "s", "type": "schedule", "timezone": "Nowhere/City", "open": {}, "branches": {"open": "o", "closed": "o"}},
        {"id": "z", "type": "output", "fields": {}, "surprise": 1}]});
    let paths = problems(&d);
    for expected in [
        "$.steps[1].branches[0].when",
        "$.steps[1].default",
        "$.steps[2].fields.agent_id",
        "$.steps[2].fields.version",
        "$.steps[3].id",
        "$.steps[4].type",
        "$.steps[5].type",
        "$.steps[6].method",
        "$.steps[6].timeout_ms",
        "$.steps[6].url",
        "$.steps[7].ms",
        "$.steps[8].timezone",
        "$.steps[9].surprise",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "missing {expected} in {paths:?}"
        );
    }
    let dead_end = json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "dead"},
        {"id": "dead", "type": "note"}]});
    assert_eq!(problems(&dead_end), ["$.steps[1].next"]);
    let graph = json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "a"},
        {"id": "a", "type": "note", "next": "b"},
        {"id": "b", "type": "note", "next": "a"},
        {"id": "lonely", "type": "output", "fields": {}}]});
    let paths = problems(&graph);
    assert!(paths.contains(&"$.steps[1]".to_owned()), "cycle: {paths:?}");
    assert!(
        paths.contains(&"$.steps[3]".to_owned()),
        "unreachable: {paths:?}"
    );
    assert_eq!(
        problems(&json!({"version": 2, "start": "in", "steps": []})),
        ["$.version", "$.start"]
    );
    assert_eq!(problems(&json!({"version": 1})), ["$"]);
}

#[tokio::test]
async fn hostile_definitions_are_refused_or_bounded() {
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    let huge = format!("{{{{ '{}' }}}}", "x".repeat(100_000));
    for when in [deep, huge, "{{ $eval('1') }}".to_owned()] {
        let d = def(
            json!([{"id": "c", "type": "condition", "branches": [{"when": when, "next": "o"}], "default": "o"},
                           {"id": "o", "type": "output", "fields": {}}]),
        );
        assert_eq!(problems(&d), ["$.steps[1].branches[0].when"]);
    }
    // Thousands of steps: refused before anything else.
    let mut steps = vec![json!({"id": "in", "type": "input", "next": "s0"})];
    for i in 0..5000 {
        steps.push(json!({"id": format!("s{i}"), "type": "note", "next": format!("s{}", i + 1)}));
    }
    assert_eq!(
        problems(&json!({"version": 1, "start": "in", "steps": steps})),
        ["$.steps"]
    );
    // Runaway recursion and huge results are bounded workflow failures.
    for expr in [
        "{{ ($f := function($n) { $f($n + 1) }; $f(0)) }}",
        "{{ $count([1..100000000]) }}",
        "{{ $join([1..50000].($string($) & $string($)), ',') }}",
    ] {
        let call = input("+1", "+1", NOON_UTC);
        let r = run(
            def(json!([{"id": "o", "type": "output", "fields": {"agent_id": expr}}])),
            &call,
        )
        .await;
        assert!(
            matches!(r.result, Err(RunError::Step { .. })),
            "{expr}: {:?}",
            r.result
        );
    }
    // The limit on steps is a config key.
    let limits = Limits {
        max_steps: 3,
        ..Limits::default()
    };
    let four = def(
        json!([{"id": "a", "type": "note", "next": "b"}, {"id": "b", "type": "note", "next": "o"},
                          {"id": "o", "type": "output", "fields": {}}]),
    );
    assert!(routing::compile(&four, &limits).is_err());
}
