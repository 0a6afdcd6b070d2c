//! `/core/trunks`: carrier trunks, the source networks calls may come from.
//! `auth_password` is write-only: it is stored for digest authentication and
//! never returned.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{needs, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ListParams};
use super::validate::{is_country_code, normalize_cidr, Violations};
use super::{nullable, AdminState, ListPage};
use crate::store::types::{Trunk, TrunkFields};

/// A trunk as the API shows it (never the password).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrunkView {
    pub id: String,
    pub name: String,
    /// Source networks (CIDR) calls are accepted from.
    pub inbound_addresses: Vec<String>,
    pub auth_username: Option<String>,
    /// Whether a digest password is set (the password itself is write-only).
    pub has_auth_password: bool,
    /// Take the caller number from P-Asserted-Identity instead of From.
    pub trust_asserted_identity: bool,
    /// Country code used to normalize national-format numbers to E.164.
    pub default_country_code: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Trunk> for TrunkView {
    fn from(t: Trunk) -> Self {
        Self {
            id: t.id,
            name: t.fields.name,
            inbound_addresses: t.fields.inbound_addresses,
            auth_username: t.fields.auth_username,
            has_auth_password: t.fields.auth_password.is_some(),
            trust_asserted_identity: t.fields.trust_asserted_identity,
            default_country_code: t.fields.default_country_code,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// POST body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTrunk {
    pub name: String,
    pub inbound_addresses: Vec<String>,
    #[serde(default)]
    pub auth_username: Option<String>,
    #[serde(default)]
    pub auth_password: Option<String>,
    #[serde(default)]
    pub trust_asserted_identity: bool,
    #[serde(default)]
    pub default_country_code: Option<String>,
}

/// PUT body: only the fields sent change; nullable fields clear with `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateTrunk {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub inbound_addresses: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub auth_username: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub auth_password: Option<Option<String>>,
    #[serde(default)]
    pub trust_asserted_identity: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub default_country_code: Option<Option<String>>,
}

/// Validates and normalizes (CIDRs with host bits cleared).
fn checked(mut f: TrunkFields) -> Result<TrunkFields, ApiError> {
    let mut v = Violations::new();
    let name_len = f.name.trim().chars().count();
    v.check(
        (1..=200).contains(&name_len),
        "$.name",
        "must be 1-200 characters",
    );
    v.check(
        !f.inbound_addresses.is_empty(),
        "$.inbound_addresses",
        "must list at least one address or CIDR",
    );
    v.check(
        f.inbound_addresses.len() <= 1000,
        "$.inbound_addresses",
        "at most 1000 entries",
    );
    for (i, cidr) in f.inbound_addresses.iter_mut().enumerate() {
        match normalize_cidr(cidr) {
            Some(normal) => *cidr = normal,
            None => v.push(
                format!("$.inbound_addresses[{i}]"),
                "must be an IP address or CIDR such as 203.0.113.0/24",
            ),
        }
    }
    v.check(
        f.auth_username.is_some() == f.auth_password.is_some(),
        "$.auth_password",
        "auth_username and auth_password must be set together",
    );
    for (path, value) in [
        ("$.auth_username", &f.auth_username),
        ("$.auth_password", &f.auth_password),
    ] {
        if let Some(s) = value {
            v.check(
                (1..=128).contains(&s.len()) && !s.chars().any(char::is_control),
                path,
                "must be 1-128 printable characters",
            );
        }
    }
    if let Some(cc) = &f.default_country_code {
        v.check(
            is_country_code(cc),
            "$.default_country_code",
            "must be 1-3 digits, e.g. \"1\" or \"44\"",
        );
    }
    v.finish()?;
    Ok(f)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("trunk {id:?} not found"))
}

#[utoipa::path(operation_id = "list_trunks", get, path = "/core/trunks", tag = "trunks",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListPage<TrunkView>)))]
pub(crate) async fn list(
    State(state): State<AdminState>,
    caller: Caller<needs::TrunksRead>,
    ListParams(page): ListParams,
) -> Result<Json<ListPage<TrunkView>>, ApiError> {
    let page = state.store.trunks(&caller.organization_id, &page).await?;
    Ok(Json(ListPage::from_page(page)))
}

#[utoipa::path(operation_id = "create_trunks", post, path = "/core/trunks", tag = "trunks", request_body = CreateTrunk,
    responses((status = 201, body = TrunkView), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AdminState>,
    caller: Caller<needs::TrunksManage>,
    ApiJson(body): ApiJson<CreateTrunk>,
) -> Result<(StatusCode, Json<TrunkView>), ApiError> {
    let fields = checked(TrunkFields {
        name: body.name,
        inbound_addresses: body.inbound_addresses,
        auth_username: body.auth_username,
        auth_password: body.auth_password,
        trust_asserted_identity: body.trust_asserted_identity,
        default_country_code: body.default_country_code,
    })?;
    let trunk = state
        .store
        .create_trunk(&caller.organization_id, &fields)
        .await?;
    state.changed(&caller.organization_id).await;
    Ok((StatusCode::CREATED, Json(trunk.into())))
}

#[utoipa::path(operation_id = "get_trunks", get, path = "/core/trunks/{id}", tag = "trunks",
    responses((status = 200, body = TrunkView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AdminState>,
    caller: Caller<needs::TrunksRead>,
    Path(id): Path<String>,
) -> Result<Json<TrunkView>, ApiError> {
    let trunk = state.store.trunk(&caller.organization_id, &id).await?;
    Ok(Json(trunk.ok_or_else(|| not_found(&id))?.into()))
}

#[utoipa::path(operation_id = "update_trunks", put, path = "/core/trunks/{id}", tag = "trunks", request_body = UpdateTrunk,
    responses((status = 200, body = TrunkView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AdminState>,
    caller: Caller<needs::TrunksManage>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UpdateTrunk>,
) -> Result<Json<TrunkView>, ApiError> {
    let org = &caller.organization_id;
    let current = state
        .store
        .trunk(org, &id)
        .await?
        .ok_or_else(|| not_found(&id))?
        .fields;
    let fields = checked(TrunkFields {
        name: patch.name.unwrap_or(current.name),
        inbound_addresses: patch.inbound_addresses.unwrap_or(current.inbound_addresses),
        auth_username: patch.auth_username.unwrap_or(current.auth_username),
        auth_password: patch.auth_password.unwrap_or(current.auth_password),
        trust_asserted_identity: patch
            .trust_asserted_identity
            .unwrap_or(current.trust_asserted_identity),
        default_country_code: patch
            .default_country_code
            .unwrap_or(current.default_country_code),
    })?;
    let trunk = state.store.update_trunk(org, &id, &fields).await?;
    state.changed(&caller.organization_id).await;
    Ok(Json(trunk.ok_or_else(|| not_found(&id))?.into()))
}

#[utoipa::path(operation_id = "delete_trunks", delete, path = "/core/trunks/{id}", tag = "trunks",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AdminState>,
    caller: Caller<needs::TrunksManage>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .delete_trunk(&caller.organization_id, &id)
        .await?
    {
        state.changed(&caller.organization_id).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}
