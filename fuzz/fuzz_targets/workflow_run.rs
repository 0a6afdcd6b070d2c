//! A workflow run with an arbitrary expression on arbitrary input: the
//! engine's limits and panic guard must turn anything into a bounded result.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use inroute::routing::{compile, run, CallInput, HttpClient, Limits, RunEnv};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    // The engine's own panics are caught by the runner (catch_unwind) and must
    // not abort the fuzzer; a panic that escapes still aborts (libfuzzer-sys).
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let text = String::from_utf8_lossy(data);
    let (expr, caller) = text.split_once('\n').unwrap_or((&text, "+14155550100"));
    let definition = json!({"version": 1, "start": "in", "steps": [
        {"id": "in", "type": "input", "next": "c"},
        {"id": "c", "type": "condition", "branches": [{"when": format!("{{{{ {expr} }}}}"), "next": "o"}], "default": "o"},
        {"id": "o", "type": "output", "fields": {"agent_id": format!("{{{{ {expr} }}}}"), "initial_context": format!("x {{{{ {expr} }}}}")}}]});
    let Ok(plan) = compile(&definition, &Limits::default()) else { return };
    let input = CallInput {
        caller_number: caller.to_owned(),
        called_number: "+15550100001".to_owned(),
        trunk_id: "t".to_owned(),
        organization_id: "o".to_owned(),
        timestamp: "2026-12-02T15:00:00Z".parse().unwrap(),
        sip_headers: json!({"User-Agent": caller}).as_object().unwrap().clone(),
    };
    let env = RunEnv {
        http: HttpClient::new(1024).unwrap(),
        secrets: Arc::new(HashMap::from([("k".to_owned(), "v".to_owned())])),
        expression_timeout_ms: 20,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let _ = rt.block_on(run(&plan, &input, &env));
});
