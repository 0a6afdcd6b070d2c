//! The call path (DESIGN section 1): INVITE facts → trunk, number and
//! organization (from the in-memory snapshot) → workflow → SIP answer.
//! Nothing here touches the database.
//!
//! Allowed imports: `sip` (facts and answers), `routing`, `snapshot`,
//! `config`, `decision_log` (and its record type). Must not query the store
//! or import `admin`.

pub mod number;
pub mod redirect;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::RedirectConfig;
use crate::decision_log::{new_decision_id, DecisionLog};
use crate::metrics::metrics;
use crate::routing::{Action, CallInput, HttpClient, RunEnv};
use crate::sip::{Answer, CallFacts, CallHandler};
use crate::snapshot::Routing;
use crate::store::types::{DecisionRecord, JsonText};

/// Routes INVITEs. Cheap to clone.
#[derive(Clone)]
pub struct CallRouter {
    routing: Routing,
    http: HttpClient,
    expression_timeout_ms: u64,
    redirect: Arc<RedirectConfig>,
    permits: Arc<Semaphore>,
    log: DecisionLog,
}

impl CallRouter {
    pub fn new(
        routing: Routing,
        http: HttpClient,
        expression_timeout_ms: u64,
        redirect: RedirectConfig,
        max_concurrent: usize,
        log: DecisionLog,
    ) -> Self {
        Self {
            routing,
            http,
            expression_timeout_ms,
            redirect: Arc::new(redirect),
            permits: Arc::new(Semaphore::new(max_concurrent)),
            log,
        }
    }

    /// Decides, answers, and queues the decision record.
    async fn answer(&self, facts: CallFacts) -> Answer {
        let started = Instant::now();
        let mut record = DecisionRecord {
            id: new_decision_id(),
            organization_id: String::new(),
            call_id: facts.call_id.clone(),
            trunk_id: None,
            caller_number: None,
            called_number: Some(facts.called.clone()),
            received_at: Utc::now(),
            duration_us: 0,
            outcome: String::new(),
            reason: String::new(),
            agent_id: None,
            agent_version: None,
            sip_status: 0,
            initial_context: None,
            custom_metadata: None,
            trace: None,
        };
        let answer = self.decide(facts, &mut record).await;
        let elapsed = started.elapsed();
        record.duration_us = i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX);
        let m = metrics();
        m.decision_latency.observe(elapsed);
        m.calls.inc(label(&record.outcome), label(&record.reason));
        record.sip_status = i64::from(answer.status);
        tracing::info!(
            decision_id = %record.id,
            org = %record.organization_id,
            called = record.called_number.as_deref().unwrap_or(""),
            outcome = %record.outcome,
            reason = %record.reason,
            status = answer.status,
            agent = record.agent_id.as_deref().unwrap_or(""),
            "routed"
        );
        self.log.record(record);
        answer
    }

    async fn decide(&self, facts: CallFacts, record: &mut DecisionRecord) -> Answer {
        let snapshot = self.routing.current();
        let source = facts.source.ip();
        let found = snapshot.find_number(&facts.called, source, number::candidates);
        if found.is_none() && !snapshot.knows_source(source) {
            tracing::info!(target: "security", source = %facts.source, reason = "unknown_source", "forbidden INVITE");
            (record.outcome, record.reason) = ("forbidden".into(), "unknown_source".into());
            return reject(403, "Forbidden", "source address belongs to no trunk", None);
        }
        let Some((org, trunk, called)) = found else {
            // Attribute the miss only when the source is one organization's
            // trunk; with shared carrier addresses nobody owns it.
            let trunks: Vec<_> = snapshot.trunks_for(source).collect();
            if let Some((org, trunk)) = trunks.first() {
                if trunks
                    .iter()
                    .all(|(o, _)| o.organization_id == org.organization_id)
                {
                    record.organization_id = org.organization_id.clone();
                    record.trunk_id = Some(trunk.id.clone());
                }
            }
            (record.outcome, record.reason) = ("not_found".into(), "unknown_number".into());
            return reject(404, "Not Found", "number not served on this trunk", None);
        };
        let caller_uri = match (&facts.asserted_uri, trunk.trust_asserted_identity) {
            (Some(asserted), true) => asserted.as_str(),
            _ => facts.from_uri.as_str(),
        };
        let input = CallInput {
            caller_number: number::caller(caller_uri, trunk.default_country_code.as_deref()),
            called_number: called,
            trunk_id: trunk.id.clone(),
            organization_id: org.organization_id.clone(),
            timestamp: record.received_at,
            sip_headers: facts.sip_headers,
        };
        record.organization_id = input.organization_id.clone();
        record.trunk_id = Some(input.trunk_id.clone());
        record.caller_number = Some(input.caller_number.clone());
        record.called_number = Some(input.called_number.clone());
        let Ok(_permit) = self.permits.try_acquire() else {
            tracing::warn!(reason = "overloaded", "workflow concurrency cap reached");
            (record.outcome, record.reason) = ("unavailable".into(), "overloaded".into());
            return Answer {
                status: 503,
                reason: "Service Unavailable".to_owned(),
                headers: vec![("Retry-After".to_owned(), "5".to_owned())],
            };
        };
        let env = RunEnv {
            http: self.http.clone(),
            secrets: org.secrets.clone(),
            expression_timeout_ms: self.expression_timeout_ms,
        };
        let run_started = Instant::now();
        let routed = org.route(org.config.as_ref(), &input, &env).await;
        if let Some(run) = &routed.run {
            metrics().workflow_run.observe(run_started.elapsed());
            for step in run.trace.iter().filter(|t| t.kind == "http") {
                metrics()
                    .http_step
                    .observe(std::time::Duration::from_micros(step.duration_us));
            }
        }
        let decision = routed.decision;
        record.reason = decision.reason.as_str().to_owned();
        record.agent_id.clone_from(&decision.agent_id);
        record.agent_version = decision.version;
        record.initial_context = Some(decision.initial_context.clone()).filter(|c| !c.is_empty());
        record.custom_metadata = decision
            .custom_metadata
            .clone()
            .map(serde_json::Value::Object);
        record.trace = routed.run.map(|run| JsonText::encode(&run.trace));
        match decision.action {
            Action::Redirect => {
                record.outcome = "redirect".into();
                let contact = redirect::contact(
                    &decision,
                    &record.id,
                    &self.redirect.agent_domain,
                    self.redirect.max_response_bytes,
                );
                Answer {
                    status: 302,
                    reason: "Moved Temporarily".to_owned(),
                    headers: vec![
                        ("Contact".to_owned(), contact),
                        ("X-Inroute-Decision-Id".to_owned(), record.id.clone()),
                    ],
                }
            }
            Action::Reject => {
                record.outcome = "reject".into();
                reject(
                    603,
                    "Decline",
                    decision.reason.as_str(),
                    Some(record.id.clone()),
                )
            }
        }
    }
}

/// Outcome and reason texts as `'static` metric labels (closed sets).
fn label(value: &str) -> &'static str {
    const KNOWN: [&str; 19] = [
        "redirect",
        "reject",
        "forbidden",
        "not_found",
        "unavailable",
        "unknown_source",
        "unknown_number",
        "overloaded",
        "rejected",
        "agent",
        "workflow_error",
        "workflow_timeout",
        "invalid_output",
        "unknown_agent",
        "unpublished_version",
        "no_agent_in_output",
        "no_config",
        "disabled",
        "number_assignment",
    ];
    KNOWN
        .iter()
        .find(|k| **k == value)
        .copied()
        .unwrap_or("other")
}

fn reject(status: u16, phrase: &str, why: &str, decision_id: Option<String>) -> Answer {
    let mut headers = vec![("Reason".to_owned(), redirect::reason_header(status, why))];
    if let Some(id) = decision_id {
        headers.push(("X-Inroute-Decision-Id".to_owned(), id));
    }
    Answer {
        status,
        reason: phrase.to_owned(),
        headers,
    }
}

impl CallHandler for CallRouter {
    fn knows_source(&self, ip: IpAddr) -> bool {
        self.routing.knows_source(ip)
    }

    fn route(&self, facts: CallFacts) -> impl std::future::Future<Output = Answer> + Send {
        let span = tracing::info_span!("call", call_id = %facts.call_id, source = %facts.source);
        self.answer(facts).instrument(span)
    }
}
