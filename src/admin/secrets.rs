//! `/core/workflow-secrets`: per-organization values for `$secret(name)`.
//! Write-only: names can be listed, values are never returned.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{needs, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::AdminState;

/// Largest secret value, in bytes.
const MAX_VALUE_BYTES: usize = 8 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutSecret {
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SecretName {
    pub name: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SecretList {
    pub items: Vec<SecretName>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "secret names are 1-64 letters, digits, `_`, `-` or `.`".to_owned(),
        ))
    }
}

#[utoipa::path(operation_id = "list_workflow_secrets", get, path = "/core/workflow-secrets", tag = "workflow-secrets",
    responses((status = 200, body = SecretList)))]
pub(crate) async fn list(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingManage>,
) -> Result<Json<SecretList>, ApiError> {
    let names = state.store.secret_names(&caller.organization_id).await?;
    Ok(Json(SecretList {
        items: names
            .into_iter()
            .map(|(name, updated_at)| SecretName { name, updated_at })
            .collect(),
    }))
}

#[utoipa::path(operation_id = "put_workflow_secret", put, path = "/core/workflow-secrets/{name}", tag = "workflow-secrets",
    request_body = PutSecret, responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingManage>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PutSecret>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    if body.value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::invalid(
            "$.value",
            format!("at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    state
        .store
        .put_secret(&caller.organization_id, &name, &body.value)
        .await?;
    state.changed(&caller.organization_id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(operation_id = "delete_workflow_secret", delete, path = "/core/workflow-secrets/{name}", tag = "workflow-secrets",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingManage>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .delete_secret(&caller.organization_id, &name)
        .await?
    {
        state.changed(&caller.organization_id).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("secret {name:?} not found")))
    }
}
