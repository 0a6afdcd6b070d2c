//! `/core/phone-numbers`: the organization's numbers, the trunk each arrives
//! on, and the agent that answers it when no routing config applies.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{needs, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ListParams};
use super::validate::{is_e164, Violations};
use super::{check_agent_ref, nullable, AdminState, ListPage};
use crate::store::types::{PhoneNumber, PhoneNumberFields};
use crate::store::Store;

/// A phone number as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PhoneNumberView {
    pub id: String,
    /// E.164, e.g. `+14155550100`.
    pub phone_number: String,
    pub trunk_id: String,
    pub inbound_agent_id: Option<String>,
    /// `null` means the agent's latest published version.
    pub inbound_agent_version: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<PhoneNumber> for PhoneNumberView {
    fn from(n: PhoneNumber) -> Self {
        Self {
            id: n.id,
            phone_number: n.fields.phone_number,
            trunk_id: n.fields.trunk_id,
            inbound_agent_id: n.fields.inbound_agent_id,
            inbound_agent_version: n.fields.inbound_agent_version,
            created_at: n.created_at,
            updated_at: n.updated_at,
        }
    }
}

/// POST body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePhoneNumber {
    pub phone_number: String,
    pub trunk_id: String,
    #[serde(default)]
    pub inbound_agent_id: Option<String>,
    #[serde(default)]
    pub inbound_agent_version: Option<i64>,
}

/// PUT body: only the fields sent change. `"inbound_agent_id": null` also
/// clears the version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdatePhoneNumber {
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub trunk_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub inbound_agent_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub inbound_agent_version: Option<Option<i64>>,
}

/// Checks the number's format and that its trunk and agent exist in `org`.
async fn check(store: &Store, org: &str, f: &PhoneNumberFields) -> Result<(), ApiError> {
    let mut v = Violations::new();
    v.check(
        is_e164(&f.phone_number),
        "$.phone_number",
        "must be an E.164 number such as +14155550100",
    );
    if store.trunk(org, &f.trunk_id).await?.is_none() {
        v.push(
            "$.trunk_id",
            format!("trunk {:?} does not exist in this organization", f.trunk_id),
        );
    }
    if let Some(n) = f.inbound_agent_version {
        v.check(n >= 1, "$.inbound_agent_version", "must be at least 1");
    }
    match &f.inbound_agent_id {
        Some(agent) => {
            let paths = ("$.inbound_agent_id", "$.inbound_agent_version");
            check_agent_ref(store, org, agent, f.inbound_agent_version, paths, &mut v).await?;
        }
        None if f.inbound_agent_version.is_some() => {
            v.push(
                "$.inbound_agent_version",
                "cannot be set without inbound_agent_id",
            );
        }
        None => {}
    }
    v.finish()
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("phone number {id:?} not found"))
}

#[utoipa::path(operation_id = "list_phone_numbers", get, path = "/core/phone-numbers", tag = "phone-numbers",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListPage<PhoneNumberView>)))]
pub(crate) async fn list(
    State(state): State<AdminState>,
    caller: Caller<needs::NumbersRead>,
    ListParams(page): ListParams,
) -> Result<Json<ListPage<PhoneNumberView>>, ApiError> {
    let page = state
        .store
        .phone_numbers(&caller.organization_id, &page)
        .await?;
    Ok(Json(ListPage::from_page(page)))
}

#[utoipa::path(operation_id = "create_phone_numbers", post, path = "/core/phone-numbers", tag = "phone-numbers", request_body = CreatePhoneNumber,
    responses((status = 201, body = PhoneNumberView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AdminState>,
    caller: Caller<needs::NumbersManage>,
    ApiJson(body): ApiJson<CreatePhoneNumber>,
) -> Result<(StatusCode, Json<PhoneNumberView>), ApiError> {
    let org = &caller.organization_id;
    let fields = PhoneNumberFields {
        phone_number: body.phone_number,
        trunk_id: body.trunk_id,
        inbound_agent_id: body.inbound_agent_id,
        inbound_agent_version: body.inbound_agent_version,
    };
    check(&state.store, org, &fields).await?;
    let number = state.store.create_phone_number(org, &fields).await?;
    state.changed(&caller.organization_id).await;
    Ok((StatusCode::CREATED, Json(number.into())))
}

#[utoipa::path(operation_id = "get_phone_numbers", get, path = "/core/phone-numbers/{id}", tag = "phone-numbers",
    responses((status = 200, body = PhoneNumberView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AdminState>,
    caller: Caller<needs::NumbersRead>,
    Path(id): Path<String>,
) -> Result<Json<PhoneNumberView>, ApiError> {
    let number = state
        .store
        .phone_number(&caller.organization_id, &id)
        .await?;
    Ok(Json(number.ok_or_else(|| not_found(&id))?.into()))
}

#[utoipa::path(operation_id = "update_phone_numbers", put, path = "/core/phone-numbers/{id}", tag = "phone-numbers", request_body = UpdatePhoneNumber,
    responses((status = 200, body = PhoneNumberView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AdminState>,
    caller: Caller<needs::NumbersManage>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UpdatePhoneNumber>,
) -> Result<Json<PhoneNumberView>, ApiError> {
    let org = &caller.organization_id;
    let current = state
        .store
        .phone_number(org, &id)
        .await?
        .ok_or_else(|| not_found(&id))?
        .fields;
    let mut fields = PhoneNumberFields {
        phone_number: patch.phone_number.unwrap_or(current.phone_number),
        trunk_id: patch.trunk_id.unwrap_or(current.trunk_id),
        inbound_agent_id: current.inbound_agent_id,
        inbound_agent_version: current.inbound_agent_version,
    };
    if let Some(agent) = patch.inbound_agent_id {
        if agent != fields.inbound_agent_id {
            fields.inbound_agent_version = None;
        }
        fields.inbound_agent_id = agent;
    }
    if let Some(version) = patch.inbound_agent_version {
        fields.inbound_agent_version = version;
    }
    check(&state.store, org, &fields).await?;
    let number = state.store.update_phone_number(org, &id, &fields).await?;
    state.changed(&caller.organization_id).await;
    Ok(Json(number.ok_or_else(|| not_found(&id))?.into()))
}

#[utoipa::path(operation_id = "delete_phone_numbers", delete, path = "/core/phone-numbers/{id}", tag = "phone-numbers",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AdminState>,
    caller: Caller<needs::NumbersManage>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .delete_phone_number(&caller.organization_id, &id)
        .await?
    {
        state.changed(&caller.organization_id).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}
