//! Compile and run a realistic routing workflow with no `http` step:
//! input, a schedule, two conditions with four branches, a split, and an
//! output with `initial_context` and `custom_metadata` expressions.
//!
//! Run: `cargo bench --bench workflow`

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use inroute::routing::{self, CallInput, HttpClient, Limits, RunEnv};
use serde_json::{json, Value};

fn definition() -> Value {
    json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "hours"},
        {"id": "hours", "type": "schedule", "timezone": "America/New_York",
         "open": {"mon-fri": ["08:00-20:00"], "sat": ["10:00-14:00"]}, "closed_dates": ["2026-12-25", "2027-01-01"],
         "branches": {"open": "region", "closed": "after_hours"}},
        {"id": "region", "type": "condition", "branches": [
            {"name": "uk", "when": "{{ $substring(input.caller_number, 0, 3) = '+44' }}", "next": "uk"},
            {"name": "ca", "when": "{{ $substring(input.called_number, 0, 5) = '+1604' }}", "next": "tier"}],
         "default": "tier"},
        {"id": "tier", "type": "condition", "branches": [
            {"name": "vip", "when": "{{ input.sip_headers.`X-Customer-Tier` = 'gold' }}", "next": "vip"},
            {"name": "known", "when": "{{ $exists(input.sip_headers.`X-Account`) }}", "next": "ab"}],
         "default": "ab"},
        {"id": "ab", "type": "split", "key": "{{ input.caller_number }}",
         "branches": [{"name": "a", "weight": 90, "next": "main"}, {"name": "b", "weight": 10, "next": "trial"}]},
        {"id": "vip", "type": "output", "fields": {"agent_id": "agent_vip",
            "initial_context": "{{ 'VIP caller ' & input.caller_number & ' on ' & input.called_number }}",
            "custom_metadata": {"tier": "{{ input.sip_headers.`X-Customer-Tier` }}", "trunk": "{{ input.trunk_id }}"}}},
        {"id": "main", "type": "output", "fields": {"agent_id": "agent_main", "version": 3,
            "initial_context": "Caller {{ input.caller_number }}",
            "custom_metadata": {"account": "{{ input.sip_headers.`X-Account` }}", "arm": "{{ ab.branch }}"}}},
        {"id": "trial", "type": "output", "fields": {"agent_id": "agent_trial",
            "initial_context": "{{ 'Trial ' & input.caller_number }}", "custom_metadata": {"arm": "{{ ab.branch }}"}}},
        {"id": "uk", "type": "output", "fields": {"agent_id": "agent_uk"}},
        {"id": "after_hours", "type": "output", "fields": {"reject": true}}
    ]})
}

fn input() -> CallInput {
    CallInput {
        caller_number: "+14155550123".into(),
        called_number: "+12125550100".into(),
        trunk_id: "trk_carrier".into(),
        organization_id: "org_bench".into(),
        timestamp: "2026-12-02T15:30:00Z".parse().unwrap(),
        sip_headers:
            json!({"From": "<sip:+14155550123@carrier.example>;tag=1", "To": "<sip:+12125550100@x>",
                            "Call-ID": "a84b4c76e66710", "User-Agent": "carrier-sbc/5.1",
                            "X-Account": "acct-991", "X-Customer-Tier": "silver"})
            .as_object()
            .unwrap()
            .clone(),
    }
}

fn bench(c: &mut Criterion) {
    let definition = definition();
    let limits = Limits::default();
    c.bench_function("workflow/compile", |b| {
        b.iter(|| routing::compile(black_box(&definition), &limits).unwrap())
    });

    let plan = routing::compile(&definition, &limits).unwrap();
    let env = RunEnv {
        http: HttpClient::new(256 * 1024).unwrap(),
        secrets: Arc::new(HashMap::new()),
        expression_timeout_ms: 50,
    };
    let call = input();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let run = rt.block_on(routing::run(&plan, &call, &env));
    assert_eq!(run.result.unwrap().agent_id.as_deref(), Some("agent_main"));
    c.bench_function("workflow/run", |b| {
        b.iter(|| rt.block_on(routing::run(black_box(&plan), black_box(&call), &env)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
