//! Workflows through the admin API: validation on POST/PUT, the dry-run
//! endpoint, and write-only secrets. Both backends.

mod support;

use inroute::token::Scope;
use serde_json::{json, Value};
use support::{Backend, TestDaemon};

const CONFIG: &str = "/core/inbound-routing-config";
const TEST: &str = "/core/inbound-routing-config/test";

/// An org with agents `sales` and `support` (v1 published), `draft` (v1 draft),
/// a trunk and number +14155550100 assigned to `support`.
async fn org(d: &TestDaemon) -> String {
    let org = d.org("Acme").await;
    let key = d.admin_key(&org).await;
    for agent in ["sales", "support", "draft"] {
        d.req("POST", "/core/agents")
            .token(&key)
            .json(json!({"id": agent, "name": agent}))
            .send()
            .await;
        d.req("POST", &format!("/core/agents/{agent}/versions"))
            .token(&key)
            .send()
            .await;
        if agent != "draft" {
            d.req("POST", &format!("/core/agents/{agent}/versions/1/publish"))
                .token(&key)
                .send()
                .await;
        }
    }
    let trunk = d
        .req("POST", "/core/trunks")
        .token(&key)
        .json(json!({"name": "t", "inbound_addresses": ["127.0.0.0/8"]}))
        .send()
        .await
        .body["id"]
        .clone();
    let r = d.req("POST", "/core/phone-numbers").token(&key)
        .json(json!({"phone_number": "+14155550100", "trunk_id": trunk, "inbound_agent_id": "support"})).send().await;
    assert_eq!(r.status, 201, "{r:?}");
    key
}

fn by_hour() -> Value {
    json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "hours"},
        {"id": "hours", "type": "schedule", "timezone": "America/New_York", "open": {"mon-fri": ["09:00-17:00"]},
         "branches": {"open": "who", "closed": "closed"}},
        {"id": "who", "type": "condition", "branches": [
            {"name": "vip", "when": "{{ $substring(input.caller_number, 0, 5) = '+1415' }}", "next": "sales"}], "default": "support"},
        {"id": "sales", "type": "output", "fields": {"agent_id": "sales", "initial_context": "{{ 'VIP ' & input.caller_number }}",
                                                     "custom_metadata": {"key": "{{ $secret('crm') }}"}}},
        {"id": "support", "type": "output", "fields": {"agent_id": "support", "version": 1}},
        {"id": "closed", "type": "output", "fields": {"reject": true}}]})
}

async fn invalid_definitions_are_422_with_paths(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let key = org(&d).await;
    let bad = json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "x"},
        {"id": "x", "type": "code", "next": "y"},
        {"id": "o", "type": "output", "fields": {"agent_id": "{{ $eval('x') }}"}}]});
    let r = d
        .req("POST", CONFIG)
        .token(&key)
        .json(json!({"workflow_definition": bad}))
        .send()
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    let paths = r.error_paths();
    assert!(
        paths.contains(&"$.workflow_definition.steps[1].type".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"$.workflow_definition.steps[2].fields.agent_id".to_owned()),
        "{paths:?}"
    );
    assert!(r.body["errors"]
        .to_string()
        .contains("not supported by this router"));
    assert_eq!(
        d.req("GET", CONFIG).token(&key).send().await.body,
        Value::Null,
        "nothing stored"
    );

    let r = d
        .req("POST", CONFIG)
        .token(&key)
        .json(json!({"workflow_definition": by_hour()}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut broken = by_hour();
    broken["steps"][1]["timezone"] = json!("Mars/Base");
    let r = d
        .req("PUT", CONFIG)
        .token(&key)
        .json(json!({"workflow_definition": broken}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (
            422,
            vec!["$.workflow_definition.steps[1].timezone".to_owned()]
        )
    );
    d.stop().await;
}

async fn dry_run_runs_the_stored_or_given_config(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let key = org(&d).await;
    let reader = d
        .org_key(
            &d.store.orgs().await.unwrap().last().unwrap().id,
            &[Scope::RoutingRead],
        )
        .await;
    let wed_10am_ny = "2026-12-02T15:00:00Z";

    // No config: the number's own assignment.
    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(json!({"input": {"called_number": "+14155550100"}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["decision"]["reason"], json!("number_assignment"));
    assert_eq!(r.body["decision"]["agent_id"], json!("support"));
    assert_eq!(r.body["decision"]["sip_status"], json!(302));
    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(json!({"input": {"called_number": "+19999999999"}}))
        .send()
        .await;
    assert_eq!(
        (
            &r.body["decision"]["reason"],
            &r.body["decision"]["sip_status"]
        ),
        (&json!("no_config"), &json!(603))
    );

    d.req("PUT", "/core/workflow-secrets/crm")
        .token(&key)
        .json(json!({"value": "s3cret"}))
        .send()
        .await;
    d.req("POST", CONFIG)
        .token(&key)
        .json(json!({"workflow_definition": by_hour(), "fallback_agent_id": "support"}))
        .send()
        .await;

    let call = |caller: &str, at: &str| json!({"input": {"caller_number": caller, "called_number": "+14155550100", "timestamp": at}});
    let r = d
        .req("POST", TEST)
        .token(&reader)
        .json(call("+14155551234", wed_10am_ny))
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let decision = &r.body["decision"];
    assert_eq!(r.body["error"], Value::Null, "{:#}", r.body);
    assert_eq!(
        (
            &decision["action"],
            &decision["reason"],
            &decision["agent_id"],
            &decision["version"]
        ),
        (
            &json!("redirect"),
            &json!("agent"),
            &json!("sales"),
            &json!(1)
        )
    );
    assert_eq!(decision["initial_context"], json!("VIP +14155551234"));
    assert_eq!(
        r.body["output"]["custom_metadata"]["key"],
        json!("s3cret"),
        "secrets reach the workflow"
    );
    let trace: Vec<(String, Option<String>)> = r.body["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["step"].as_str().unwrap().to_owned(),
                t["result"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        trace[..3],
        [
            ("in".to_owned(), None),
            ("hours".to_owned(), Some("open".to_owned())),
            ("who".to_owned(), Some("vip".to_owned()))
        ]
    );
    assert!(r.body["trace"][0]["duration_us"].is_u64());

    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(call("+442071838750", wed_10am_ny))
        .send()
        .await;
    assert_eq!(
        (
            &r.body["decision"]["agent_id"],
            &r.body["decision"]["reason"]
        ),
        (&json!("support"), &json!("agent"))
    );
    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(call("+442071838750", "2026-12-02T23:00:00Z"))
        .send()
        .await;
    assert_eq!(
        (&r.body["decision"]["action"], &r.body["decision"]["reason"]),
        (&json!("reject"), &json!("rejected"))
    );
    assert_eq!(r.body["decision"]["sip_status"], json!(603));

    // A definition under test, not stored: unpublished version → fallback.
    let test_def = json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "o"},
        {"id": "o", "type": "output", "fields": {"agent_id": "draft"}}]});
    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(json!({"workflow_definition": test_def, "fallback_agent_id": "sales", "input": {}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (
            &r.body["decision"]["reason"],
            &r.body["decision"]["agent_id"],
            &r.body["decision"]["fallback"]
        ),
        (&json!("unpublished_version"), &json!("sales"), &json!(true))
    );
    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(json!({"workflow_definition": {"version": 1}}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (422, vec!["$.workflow_definition".to_owned()])
    );
    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(json!({"input": {"timestamp": "yesterday"}}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (422, vec!["$.input.timestamp".to_owned()])
    );

    // Disabling is honoured, and nothing the dry run did was stored.
    d.req("PUT", CONFIG)
        .token(&key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    let r = d
        .req("POST", TEST)
        .token(&key)
        .json(call("+14155551234", wed_10am_ny))
        .send()
        .await;
    assert_eq!(
        (
            &r.body["decision"]["reason"],
            &r.body["decision"]["agent_id"]
        ),
        (&json!("number_assignment"), &json!("support"))
    );
    let revisions = d
        .req("GET", "/core/inbound-routing-config/revisions")
        .token(&key)
        .send()
        .await;
    assert_eq!(revisions.body["items"].as_array().unwrap().len(), 2);
    d.stop().await;
}

async fn secrets_are_write_only(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let key = org(&d).await;
    let r = d
        .req("PUT", "/core/workflow-secrets/crm")
        .token(&key)
        .json(json!({"value": "s3cret"}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    d.req("PUT", "/core/workflow-secrets/crm")
        .token(&key)
        .json(json!({"value": "rotated"}))
        .send()
        .await;
    let r = d
        .req("GET", "/core/workflow-secrets")
        .token(&key)
        .send()
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["name"], json!("crm"));
    assert!(!r.body.to_string().contains("s3cret") && !r.body.to_string().contains("rotated"));
    assert_eq!(
        d.req("PUT", "/core/workflow-secrets/bad%20name")
            .token(&key)
            .json(json!({"value": "x"}))
            .send()
            .await
            .status,
        400
    );
    let r = d
        .req("PUT", "/core/workflow-secrets/big")
        .token(&key)
        .json(json!({"value": "x".repeat(9000)}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (422, vec!["$.value".to_owned()])
    );
    let reader = d
        .org_key(
            &d.store.orgs().await.unwrap().last().unwrap().id,
            &[Scope::RoutingRead],
        )
        .await;
    assert_eq!(
        d.req("GET", "/core/workflow-secrets")
            .token(&reader)
            .send()
            .await
            .status,
        403,
        "manage scope only"
    );
    // Another organization sees nothing.
    let other = d.org("Other").await;
    let other_key = d.admin_key(&other).await;
    assert_eq!(
        d.req("GET", "/core/workflow-secrets")
            .token(&other_key)
            .send()
            .await
            .body["items"],
        json!([])
    );
    assert_eq!(
        d.req("DELETE", "/core/workflow-secrets/crm")
            .token(&other_key)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("DELETE", "/core/workflow-secrets/crm")
            .token(&key)
            .send()
            .await
            .status,
        204
    );
    assert_eq!(
        d.req("DELETE", "/core/workflow-secrets/crm")
            .token(&key)
            .send()
            .await
            .status,
        404
    );
    d.stop().await;
}

async fn the_snapshot_follows_every_write(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let key = org(&d).await;
    let daemon = d.daemon.as_ref().unwrap();
    let org_id = d.store.orgs().await.unwrap().last().unwrap().id.clone();
    let current = || daemon.routing.current();
    assert!(current().org(&org_id).unwrap().config.is_none());
    d.req("POST", CONFIG)
        .token(&key)
        .json(json!({"workflow_definition": by_hour()}))
        .send()
        .await;
    let snap = current();
    let org = snap.org(&org_id).unwrap();
    assert!(
        org.config.as_ref().unwrap().plan.is_ok(),
        "compiled once, on write"
    );
    assert_eq!(
        snap.number_owner("+14155550100").unwrap().organization_id,
        org_id
    );
    d.req("PUT", CONFIG)
        .token(&key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert!(
        !current()
            .org(&org_id)
            .unwrap()
            .config
            .as_ref()
            .unwrap()
            .enabled
    );
    assert!(
        org.config.as_ref().unwrap().enabled,
        "a call holding the old snapshot keeps a whole config"
    );
    d.stop().await;
}

on_both_backends!(
    invalid_definitions_are_422_with_paths,
    dry_run_runs_the_stored_or_given_config,
    secrets_are_write_only,
    the_snapshot_follows_every_write,
);
