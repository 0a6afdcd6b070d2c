//! The call path (DESIGN section 1): INVITE facts → trunk, number and
//! organization (from the in-memory snapshot) → workflow → SIP answer.
//! Nothing here touches the database.
//!
//! Allowed imports: `sip` (facts and answers), `routing`, `snapshot`,
//! `config`. Must not import `store` or `admin`.

pub mod number;
pub mod redirect;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::RedirectConfig;
use crate::routing::{Action, CallInput, HttpClient, RunEnv};
use crate::sip::{Answer, CallFacts, CallHandler};
use crate::snapshot::Routing;

/// Routes INVITEs. Cheap to clone.
#[derive(Clone)]
pub struct CallRouter {
    routing: Routing,
    http: HttpClient,
    expression_timeout_ms: u64,
    redirect: Arc<RedirectConfig>,
    permits: Arc<Semaphore>,
}

impl CallRouter {
    pub fn new(
        routing: Routing,
        http: HttpClient,
        expression_timeout_ms: u64,
        redirect: RedirectConfig,
        max_concurrent: usize,
    ) -> Self {
        Self {
            routing,
            http,
            expression_timeout_ms,
            redirect: Arc::new(redirect),
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }

    async fn answer(&self, facts: CallFacts) -> Answer {
        let snapshot = self.routing.current();
        let source = facts.source.ip();
        let trunks: Vec<_> = snapshot.trunks_for(source).collect();
        if trunks.is_empty() {
            tracing::info!(target: "security", source = %facts.source, reason = "unknown_source", "forbidden INVITE");
            return reject(403, "Forbidden", "source address belongs to no trunk", None);
        }
        let found = trunks.iter().find_map(|(org, trunk)| {
            number::candidates(&facts.called, trunk.default_country_code.as_deref())
                .into_iter()
                .find(|e164| {
                    org.numbers
                        .get(e164)
                        .is_some_and(|n| n.trunk_id == trunk.id)
                })
                .map(|e164| (org, trunk, e164))
        });
        let Some((org, trunk, called)) = found else {
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
            timestamp: Utc::now(),
            sip_headers: facts.sip_headers,
        };
        let Ok(_permit) = self.permits.try_acquire() else {
            tracing::warn!(reason = "overloaded", "workflow concurrency cap reached");
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
        let routed = org.route(org.config.as_ref(), &input, &env).await;
        let decision = routed.decision;
        let decision_id = crate::store::new_id("dec");
        tracing::info!(
            decision_id,
            org = %org.organization_id,
            caller = %input.caller_number,
            called = %input.called_number,
            reason = decision.reason.as_str(),
            status = decision.sip_status,
            agent = decision.agent_id.as_deref().unwrap_or(""),
            "routed"
        );
        match decision.action {
            Action::Redirect => {
                let contact = redirect::contact(
                    &decision,
                    &decision_id,
                    &self.redirect.agent_domain,
                    self.redirect.max_response_bytes,
                );
                Answer {
                    status: 302,
                    reason: "Moved Temporarily".to_owned(),
                    headers: vec![
                        ("Contact".to_owned(), contact),
                        ("X-Inroute-Decision-Id".to_owned(), decision_id),
                    ],
                }
            }
            Action::Reject => reject(
                603,
                "Decline",
                redirect::reason_text(decision.reason),
                Some(decision_id),
            ),
        }
    }
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
        self.routing.current().trunks_for(ip).next().is_some()
    }

    fn route(&self, facts: CallFacts) -> impl std::future::Future<Output = Answer> + Send {
        let span = tracing::info_span!("call", call_id = %facts.call_id, source = %facts.source);
        self.answer(facts).instrument(span)
    }
}
