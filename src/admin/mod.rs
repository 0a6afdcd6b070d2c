//! The admin HTTP API, served on its own port (default `127.0.0.1:8080`).
//!
//! Endpoints (scopes in brackets; `manage` implies `read`):
//!
//! * `GET|POST|PUT|DELETE /core/inbound-routing-config` [inbound_routing_configs]
//! * `GET /core/inbound-routing-config/revisions`,
//!   `POST /core/inbound-routing-config/revisions/{n}/restore`
//! * `GET|POST /core/agents`, `GET|PUT|DELETE /core/agents/{id}`,
//!   `GET|POST /core/agents/{id}/versions`,
//!   `POST /core/agents/{id}/versions/{v}/publish` [agents]
//! * `GET|POST /core/trunks`, `GET|PUT|DELETE /core/trunks/{id}` [trunks]
//! * `GET|POST /core/phone-numbers`, `GET|PUT|DELETE /core/phone-numbers/{id}` [phone_numbers]
//! * `POST /core/inbound-routing-config/test` (dry run) [inbound_routing_configs:read]
//! * `GET /core/inbound-routing-decisions`, `GET /core/inbound-routing-decisions/{id}` [inbound_routing_configs:read]
//! * `GET /core/workflow-secrets`, `PUT|DELETE /core/workflow-secrets/{name}` [inbound_routing_configs:manage]
//! * `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` (no auth)
//!
//! Allowed imports: `axum`, `utoipa`, `crate::store`, `crate::token`,
//! `crate::config`. Must not import `sip` transports or transaction internals.

mod agents;
mod auth;
mod decisions;
mod dry_run;
mod error;
mod extract;
mod health;
mod openapi;
mod phone_numbers;
mod routing_config;
mod secrets;
mod trunks;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use auth::ORG_HEADER;
pub use error::{ApiError, FieldError};
pub use health::Readiness;

use crate::config::AdminConfig;
use crate::routing::HttpClient;
use crate::snapshot::Routing;
use crate::store::types::Page;
use crate::store::Store;
use validate::Violations;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub limits: Arc<AdminConfig>,
    pub readiness: Readiness,
    /// The live routing snapshot, reloaded after every write.
    pub routing: Routing,
    /// What dry runs execute with (the same as calls).
    pub engine: Engine,
    /// Recent decisions in memory, for lookups before their batch lands.
    pub decisions: crate::decision_log::DecisionLog,
}

/// The workflow runtime settings shared with calls.
#[derive(Clone, Debug)]
pub struct Engine {
    pub http: HttpClient,
    pub expression_timeout_ms: u64,
    /// Workflow runs in flight before INVITEs get 503 (reported in metrics).
    pub max_concurrent: usize,
}

impl AdminState {
    /// Refreshes the organization's routing snapshot after a write, so the
    /// very next call uses it. A failure is logged; the periodic
    /// reconciliation repairs it.
    async fn changed(&self, org: &str) {
        if let Err(e) = self.store.announce_change(org).await {
            tracing::warn!(org, error = %e, "could not announce the change to other instances");
        }
        if let Err(e) = self.routing.reload_org(&self.store, org).await {
            tracing::error!(org, error = %e, "could not reload the routing snapshot");
        }
    }
}

/// Builds the admin router. A plain function so tests can drive it directly.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route(
            "/core/inbound-routing-config",
            get(routing_config::get)
                .post(routing_config::create)
                .put(routing_config::update)
                .delete(routing_config::delete),
        )
        .route("/core/inbound-routing-config/test", post(dry_run::test))
        .route(
            "/core/inbound-routing-config/revisions",
            get(routing_config::revisions),
        )
        .route(
            "/core/inbound-routing-config/revisions/{revision}/restore",
            post(routing_config::restore),
        )
        .route("/core/agents", get(agents::list).post(agents::create))
        .route(
            "/core/agents/{id}",
            get(agents::get).put(agents::update).delete(agents::delete),
        )
        .route(
            "/core/agents/{id}/versions",
            get(agents::versions).post(agents::create_version),
        )
        .route(
            "/core/agents/{id}/versions/{version}/publish",
            post(agents::publish),
        )
        .route("/core/trunks", get(trunks::list).post(trunks::create))
        .route(
            "/core/trunks/{id}",
            get(trunks::get).put(trunks::update).delete(trunks::delete),
        )
        .route(
            "/core/phone-numbers",
            get(phone_numbers::list).post(phone_numbers::create),
        )
        .route(
            "/core/phone-numbers/{id}",
            get(phone_numbers::get)
                .put(phone_numbers::update)
                .delete(phone_numbers::delete),
        )
        .route("/core/inbound-routing-decisions", get(decisions::list))
        .route("/core/inbound-routing-decisions/{id}", get(decisions::get))
        .route("/core/workflow-secrets", get(secrets::list))
        .route(
            "/core/workflow-secrets/{name}",
            axum::routing::put(secrets::put).delete(secrets::delete),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json));
    api.fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), request_span))
        .with_state(state)
}

/// One span per request, the request timeout, and an access log line.
async fn request_span(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "admin",
        method = %req.method(),
        path = %req.uri().path(),
        org = tracing::field::Empty,
    );
    let timeout = Duration::from_millis(state.limits.request_timeout_ms);
    async move {
        let started = tokio::time::Instant::now();
        let response = match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => ApiError::Unavailable(format!(
                "the request took longer than {} ms",
                timeout.as_millis()
            ))
            .into_response(),
        };
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request"
        );
        response
    }
    .instrument(span)
    .await
}

/// Serves the router on an already-bound listener until `shutdown` fires,
/// then finishes requests in flight.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// A page of a list endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListPage<T> {
    fn from_page<R: Into<T>>(page: Page<R>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// For PATCH-like bodies: absent → `None`, `null` → `Some(None)`,
/// a value → `Some(Some(v))`. Use with `#[serde(default)]`.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Records a violation at `paths.0` unless `agent` exists in `org`, and at
/// `paths.1` unless `version` (if given) is one of its versions.
async fn check_agent_ref(
    store: &Store,
    org: &str,
    agent: &str,
    version: Option<i64>,
    paths: (&str, &str),
    v: &mut Violations,
) -> Result<(), ApiError> {
    if !validate::is_agent_id(agent) || store.agent(org, agent).await?.is_none() {
        v.push(
            paths.0,
            format!("agent {agent:?} does not exist in this organization"),
        );
    } else if let Some(n) = version {
        if store.agent_version(org, agent, n).await?.is_none() {
            v.push(paths.1, format!("agent {agent:?} has no version {n}"));
        }
    }
    Ok(())
}
