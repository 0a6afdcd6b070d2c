//! `/core/inbound-routing-config`: the organization's one routing config, its
//! revisions and restore, exactly as `spec/inbound-routing.md` defines them.
//!
//! Concurrency: every change is a compare-and-set on the config's revision.
//! The revision is the `ETag`; `If-Match` on PUT/DELETE turns a lost race
//! into 412 instead of a silent overwrite.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::{needs, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{positive_int, ApiJson, DEFAULT_LIMIT, MAX_LIMIT};
use super::validate::{is_agent_id, Violations};
use super::{check_agent_ref, nullable, AdminState};
use crate::store::types::{ChangeKind, ConfigRevision, RoutingConfig, RoutingConfigFields};
use crate::store::StoreError;

/// The stored config (spec: "The response is the stored config").
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RoutingConfigView {
    pub id: String,
    pub organization_id: String,
    #[schema(value_type = Object)]
    pub workflow_definition: Value,
    pub fallback_agent_id: Option<String>,
    pub fallback_agent_version: Option<i64>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RoutingConfig> for RoutingConfigView {
    fn from(c: RoutingConfig) -> Self {
        Self {
            id: c.id,
            organization_id: c.organization_id,
            workflow_definition: c.fields.workflow_definition,
            fallback_agent_id: c.fields.fallback_agent_id,
            fallback_agent_version: c.fields.fallback_agent_version,
            enabled: c.fields.enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// POST body. `workflow_definition` is required and must be a non-empty object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRoutingConfig {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub workflow_definition: Option<Value>,
    #[serde(default)]
    pub fallback_agent_id: Option<String>,
    #[serde(default)]
    pub fallback_agent_version: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// PUT body: only the fields sent change. `"fallback_agent_id": null` removes
/// the fallback agent and its version.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRoutingConfig {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub workflow_definition: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub fallback_agent_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub fallback_agent_version: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<Option<bool>>,
}

/// How many times a PUT/DELETE without `If-Match` retries a lost race.
const RACE_RETRIES: usize = 3;

#[utoipa::path(operation_id = "get_routing_config", get, path = "/core/inbound-routing-config", tag = "inbound-routing",
    responses((status = 200, description = "The config, or `null` if none exists", body = Option<RoutingConfigView>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingRead>,
) -> Result<Response, ApiError> {
    Ok(
        match state.store.routing_config(&caller.organization_id).await? {
            Some(config) => config_response(StatusCode::OK, config),
            None => Json(Value::Null).into_response(),
        },
    )
}

#[utoipa::path(operation_id = "create_routing_config", post, path = "/core/inbound-routing-config", tag = "inbound-routing",
    request_body = CreateRoutingConfig,
    responses((status = 201, body = RoutingConfigView), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingManage>,
    ApiJson(body): ApiJson<CreateRoutingConfig>,
) -> Result<Response, ApiError> {
    let org = &caller.organization_id;
    let fields = RoutingConfigFields {
        workflow_definition: body.workflow_definition.unwrap_or(Value::Null),
        fallback_agent_id: body.fallback_agent_id,
        fallback_agent_version: body.fallback_agent_version,
        enabled: body.enabled.unwrap_or(true),
    };
    if state.store.routing_config(org).await?.is_some() {
        return Err(exists());
    }
    validate(&state, org, &fields).await?;
    let created = state
        .store
        .create_routing_config(org, &fields, ChangeKind::Create, &caller.token_id)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => exists(),
            other => other.into(),
        })?;
    state.changed(org).await;
    Ok(config_response(StatusCode::CREATED, created))
}

fn exists() -> ApiError {
    ApiError::Conflict("an inbound routing config already exists for this organization".to_owned())
}

/// The current config, which must exist (404) and match `If-Match` (412).
async fn current_matching(
    state: &AdminState,
    org: &str,
    if_match: &IfMatch,
) -> Result<RoutingConfig, ApiError> {
    let current = state
        .store
        .routing_config(org)
        .await?
        .ok_or_else(not_found)?;
    if_match.check(current.revision)?;
    Ok(current)
}

/// Every retry of a PUT/DELETE without `If-Match` lost a race.
fn still_racing() -> ApiError {
    ApiError::Conflict("the config is being changed concurrently; retry".to_owned())
}

fn not_found() -> ApiError {
    ApiError::NotFound("no inbound routing config exists for this organization".to_owned())
}

#[utoipa::path(operation_id = "update_routing_config", put, path = "/core/inbound-routing-config", tag = "inbound-routing",
    request_body = UpdateRoutingConfig,
    responses((status = 200, body = RoutingConfigView), (status = 404, body = ErrorBody),
              (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingManage>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<UpdateRoutingConfig>,
) -> Result<Response, ApiError> {
    let org = &caller.organization_id;
    let if_match = IfMatch::from_headers(&headers)?;
    for _ in 0..RACE_RETRIES {
        let current = current_matching(&state, org, &if_match).await?;
        let fields = apply(&patch, current.fields.clone())?;
        validate(&state, org, &fields).await?;
        match state
            .store
            .update_routing_config(
                org,
                current.revision,
                &fields,
                ChangeKind::Update,
                &caller.token_id,
            )
            .await
        {
            Ok(updated) => {
                state.changed(org).await;
                return Ok(config_response(StatusCode::OK, updated));
            }
            Err(StoreError::Stale) if !if_match.is_given() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(still_racing())
}

/// Applies a partial update. Nulls for required fields are 422.
fn apply(
    patch: &UpdateRoutingConfig,
    mut fields: RoutingConfigFields,
) -> Result<RoutingConfigFields, ApiError> {
    let mut violations = Violations::new();
    match &patch.workflow_definition {
        Some(Some(definition)) => fields.workflow_definition = definition.clone(),
        Some(None) => violations.push("$.workflow_definition", "cannot be null"),
        None => {}
    }
    match &patch.enabled {
        Some(Some(enabled)) => fields.enabled = *enabled,
        Some(None) => violations.push("$.enabled", "cannot be null; send true or false"),
        None => {}
    }
    if let Some(agent) = &patch.fallback_agent_id {
        if *agent != fields.fallback_agent_id {
            // A version pinned for the old agent means nothing for the new one.
            fields.fallback_agent_version = None;
        }
        fields.fallback_agent_id = agent.clone();
    }
    if let Some(version) = patch.fallback_agent_version {
        fields.fallback_agent_version = version;
    }
    violations.finish()?;
    Ok(fields)
}

#[utoipa::path(operation_id = "delete_routing_config", delete, path = "/core/inbound-routing-config", tag = "inbound-routing",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingManage>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let org = &caller.organization_id;
    let if_match = IfMatch::from_headers(&headers)?;
    for _ in 0..RACE_RETRIES {
        let current = current_matching(&state, org, &if_match).await?;
        match state
            .store
            .delete_routing_config(org, current.revision, &caller.token_id)
            .await
        {
            Ok(()) => {
                state.changed(org).await;
                return Ok(StatusCode::NO_CONTENT);
            }
            Err(StoreError::Stale) if !if_match.is_given() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(still_racing())
}

/// One entry of the audit trail: who changed what, when.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RevisionView {
    pub revision: i64,
    /// `create`, `update`, `delete` or `restore`.
    #[schema(value_type = String)]
    pub change: ChangeKind,
    /// Token id that made the change.
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    /// The config's fields after the change; `null` after a delete.
    #[schema(value_type = Option<Object>)]
    pub config: Option<RoutingConfigFields>,
}

impl From<ConfigRevision> for RevisionView {
    fn from(r: ConfigRevision) -> Self {
        Self {
            revision: r.revision,
            change: r.change,
            changed_by: r.changed_by,
            changed_at: r.changed_at,
            config: r.config,
        }
    }
}

/// A page of revisions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RevisionPage {
    pub items: Vec<RevisionView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevisionQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(operation_id = "revisions_routing_config", get, path = "/core/inbound-routing-config/revisions", tag = "inbound-routing",
    params(RevisionQuery), responses((status = 200, body = RevisionPage)))]
pub(crate) async fn revisions(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingRead>,
    query: Result<Query<RevisionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RevisionPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        )));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|c| positive_int(c, "cursor"))
        .transpose()?;
    let items = state
        .store
        .routing_config_revisions(&caller.organization_id, limit + 1, before)
        .await?;
    let mut items: Vec<RevisionView> = items.into_iter().map(Into::into).collect();
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items
            .last()
            .map(|r| r.revision.to_string())
            .unwrap_or_default()
    });
    Ok(Json(RevisionPage { items, next_cursor }))
}

#[utoipa::path(operation_id = "restore_routing_config", post, path = "/core/inbound-routing-config/revisions/{revision}/restore",
    tag = "inbound-routing", params(("revision" = i64, Path, description = "Revision number")),
    responses((status = 200, body = RoutingConfigView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn restore(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingManage>,
    Path(revision): Path<String>,
) -> Result<Response, ApiError> {
    let org = &caller.organization_id;
    let n = positive_int(&revision, "revision")?;
    let entry = state
        .store
        .routing_config_revision(org, n)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("revision {n} not found")))?;
    let fields = entry.config.ok_or_else(|| {
        ApiError::Conflict(format!(
            "revision {n} records a deletion; restore a revision that holds a config"
        ))
    })?;
    validate(&state, org, &fields).await?;
    let restored = match state.store.routing_config(org).await? {
        None => {
            state
                .store
                .create_routing_config(org, &fields, ChangeKind::Restore, &caller.token_id)
                .await?
        }
        Some(current) => {
            state
                .store
                .update_routing_config(
                    org,
                    current.revision,
                    &fields,
                    ChangeKind::Restore,
                    &caller.token_id,
                )
                .await?
        }
    };
    state.changed(org).await;
    Ok(config_response(StatusCode::OK, restored))
}

/// Checks the fields a config must satisfy, collecting every problem; the
/// workflow definition must compile.
async fn validate(
    state: &AdminState,
    org: &str,
    fields: &RoutingConfigFields,
) -> Result<(), ApiError> {
    let store = &state.store;
    let mut v = Violations::new();
    match &fields.workflow_definition {
        Value::Null => v.push("$.workflow_definition", "is required"),
        Value::Object(map) if map.is_empty() => v.push("$.workflow_definition", "cannot be empty"),
        Value::Object(_) => {
            if let Err(problems) =
                crate::routing::compile(&fields.workflow_definition, state.routing.limits())
            {
                for p in problems {
                    v.push(format!("$.workflow_definition{}", &p.path[1..]), p.message);
                }
            }
        }
        _ => v.push("$.workflow_definition", "must be a JSON object"),
    }
    if let Some(version) = fields.fallback_agent_version {
        v.check(
            version >= 1,
            "$.fallback_agent_version",
            "must be at least 1",
        );
    }
    match &fields.fallback_agent_id {
        None if fields.fallback_agent_version.is_some() => v.push(
            "$.fallback_agent_version",
            "cannot be set without fallback_agent_id",
        ),
        None => {}
        Some(agent) if !is_agent_id(agent) => v.push(
            "$.fallback_agent_id",
            "must be 1-64 letters, digits, `_`, `-` or `.`",
        ),
        Some(agent) => {
            let paths = ("$.fallback_agent_id", "$.fallback_agent_version");
            check_agent_ref(
                store,
                org,
                agent,
                fields.fallback_agent_version,
                paths,
                &mut v,
            )
            .await?;
        }
    }
    v.finish()
}

/// A JSON body with the config's revision as a strong `ETag`.
fn config_response(status: StatusCode, config: RoutingConfig) -> Response {
    let etag = etag(config.revision);
    let mut response = (status, Json(RoutingConfigView::from(config))).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn etag(revision: i64) -> String {
    format!("\"r{revision}\"")
}

/// The `If-Match` precondition (RFC 9110 §13.1.1, strong comparison).
#[derive(Debug)]
struct IfMatch(Option<Vec<String>>);

impl IfMatch {
    fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut tags = Vec::new();
        for value in headers.get_all(header::IF_MATCH) {
            let text = value
                .to_str()
                .map_err(|_| ApiError::BadRequest("If-Match is not valid ASCII".to_owned()))?;
            tags.extend(
                text.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty()),
            );
        }
        Ok(Self((!tags.is_empty()).then_some(tags)))
    }

    fn is_given(&self) -> bool {
        self.0.is_some()
    }

    fn check(&self, revision: i64) -> Result<(), ApiError> {
        match &self.0 {
            None => Ok(()),
            Some(tags) if tags.iter().any(|t| t == "*" || *t == etag(revision)) => Ok(()),
            Some(_) => Err(ApiError::PreconditionFailed),
        }
    }
}
