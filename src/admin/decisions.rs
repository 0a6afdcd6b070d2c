//! `/core/inbound-routing-decisions`: why each call went where it went.
//! Organization-scoped; a decision is found in memory first (so the agent
//! side can fetch it by the 302's decision id before its batch is written).

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{needs, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{DEFAULT_LIMIT, MAX_LIMIT};
use super::AdminState;
use crate::store::types::{DecisionFilter, DecisionRecord};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionQuery {
    pub call_id: Option<String>,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    /// `redirect`, `reject`, `forbidden`, `not_found` or `unavailable`.
    pub outcome: Option<String>,
    /// Received at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Received before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DecisionPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<DecisionRecord>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(operation_id = "list_inbound_routing_decisions", get, path = "/core/inbound-routing-decisions",
    tag = "inbound-routing", params(DecisionQuery),
    responses((status = 200, body = DecisionPage), (status = 400, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingRead>,
    query: Result<Query<DecisionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DecisionPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        )));
    }
    let filter = DecisionFilter {
        call_id: q.call_id,
        caller_number: q.caller_number,
        called_number: q.called_number,
        outcome: q.outcome,
        since: q.since,
        until: q.until,
    };
    let mut items = state
        .store
        .decisions(
            &caller.organization_id,
            &filter,
            limit + 1,
            q.cursor.as_deref(),
        )
        .await?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items.last().map(|d| d.id.clone()).unwrap_or_default()
    });
    Ok(Json(DecisionPage { items, next_cursor }))
}

#[utoipa::path(operation_id = "get_inbound_routing_decision", get, path = "/core/inbound-routing-decisions/{id}",
    tag = "inbound-routing", responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingRead>,
    Path(id): Path<String>,
) -> Result<Json<DecisionRecord>, ApiError> {
    let org = &caller.organization_id;
    if let Some(recent) = state.decisions.recent(org, &id) {
        return Ok(Json(recent));
    }
    state
        .store
        .decision(org, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("decision {id:?} not found")))
}
