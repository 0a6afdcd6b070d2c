//! Liveness and readiness.
//!
//! `/healthz` answers 200 while the process runs. `/readyz` answers 200 while
//! the daemon accepts work and the database responds, 503 while draining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AdminState;

/// Shared readiness flag: set when serving starts, cleared when draining.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AdminState>) -> impl axum::response::IntoResponse {
    let stats = state.decisions.stats();
    let sampled = crate::metrics::Sampled {
        decision_queue_depth: state.decisions.queued(),
        decision_dropped: stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
        decisions_written: stats.written(),
        decision_write_errors: stats
            .write_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        workflow_concurrency_cap: state.engine.max_concurrent,
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::metrics().render(sampled),
    )
}

#[utoipa::path(operation_id = "healthz", get, path = "/healthz", tag = "health", responses((status = 200)))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(operation_id = "readyz", get, path = "/readyz", tag = "health",
    responses((status = 200), (status = 503, description = "Draining or database unreachable")))]
pub(crate) async fn readyz(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    if !state.readiness.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining", "detail": "the daemon is shutting down"})),
        );
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "detail": format!("database: {e}")})),
        ),
    }
}
