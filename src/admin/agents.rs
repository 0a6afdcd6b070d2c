//! `/core/agents`: the registry of agents the router resolves ids against,
//! their versions, and publishing (which may assign phone numbers).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{needs, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{positive_int, ApiJson, ListParams, OptionalJson};
use super::validate::{is_agent_id, is_e164, is_sip_uri, Violations};
use super::{nullable, AdminState, ListPage};
use crate::store::new_id;
use crate::store::types::{Agent, AgentFields, AgentVersion};
use crate::token::Scope;

/// An agent as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentView {
    pub id: String,
    pub name: String,
    /// Redirect target; `null` means `sip:<id>@<redirect.agent_domain>`.
    pub sip_uri: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            id: a.id,
            name: a.name,
            sip_uri: a.sip_uri,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A version of an agent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentVersionView {
    pub agent_id: String,
    pub version: i64,
    /// `draft` or `published`.
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub published_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<AgentVersion> for AgentVersionView {
    fn from(v: AgentVersion) -> Self {
        Self {
            agent_id: v.agent_id,
            version: v.version,
            status: v.status,
            created_at: v.created_at,
            published_at: v.published_at,
        }
    }
}

/// POST body. `id` may be supplied (agents usually come from the wider product).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAgent {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub sip_uri: Option<String>,
}

/// PUT body: only the fields sent change; `"sip_uri": null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateAgent {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub sip_uri: Option<Option<String>>,
}

/// Publish body: optionally assign numbers to this agent for inbound calls.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishAgentVersion {
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// Only `inbound` is supported.
    #[serde(default)]
    pub direction: Option<String>,
}

fn check_fields(fields: &AgentFields, v: &mut Violations) {
    let name_len = fields.name.trim().chars().count();
    v.check(
        (1..=200).contains(&name_len),
        "$.name",
        "must be 1-200 characters",
    );
    if let Some(uri) = &fields.sip_uri {
        v.check(
            is_sip_uri(uri),
            "$.sip_uri",
            "must be a sip: or sips: URI such as sip:agent@host.example",
        );
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("agent {id:?} not found"))
}

#[utoipa::path(operation_id = "list_agents", get, path = "/core/agents", tag = "agents",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListPage<AgentView>)))]
pub(crate) async fn list(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsRead>,
    ListParams(page): ListParams,
) -> Result<Json<ListPage<AgentView>>, ApiError> {
    let page = state.store.agents(&caller.organization_id, &page).await?;
    Ok(Json(ListPage::from_page(page)))
}

#[utoipa::path(operation_id = "create_agents", post, path = "/core/agents", tag = "agents", request_body = CreateAgent,
    responses((status = 201, body = AgentView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsManage>,
    ApiJson(body): ApiJson<CreateAgent>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let mut v = Violations::new();
    let id = body.id.unwrap_or_else(|| new_id("agent"));
    v.check(
        is_agent_id(&id),
        "$.id",
        "must be 1-64 letters, digits, `_`, `-` or `.`",
    );
    let fields = AgentFields {
        name: body.name,
        sip_uri: body.sip_uri,
    };
    check_fields(&fields, &mut v);
    v.finish()?;
    let agent = state
        .store
        .create_agent(&caller.organization_id, &id, &fields)
        .await?;
    state.changed(&caller.organization_id).await;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

#[utoipa::path(operation_id = "get_agents", get, path = "/core/agents/{id}", tag = "agents",
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsRead>,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state.store.agent(&caller.organization_id, &id).await?;
    Ok(Json(agent.ok_or_else(|| not_found(&id))?.into()))
}

#[utoipa::path(operation_id = "update_agents", put, path = "/core/agents/{id}", tag = "agents", request_body = UpdateAgent,
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsManage>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UpdateAgent>,
) -> Result<Json<AgentView>, ApiError> {
    let org = &caller.organization_id;
    let current = state
        .store
        .agent(org, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let fields = AgentFields {
        name: patch.name.unwrap_or(current.name),
        sip_uri: patch.sip_uri.unwrap_or(current.sip_uri),
    };
    let mut v = Violations::new();
    check_fields(&fields, &mut v);
    v.finish()?;
    let agent = state.store.update_agent(org, &id, &fields).await?;
    state.changed(&caller.organization_id).await;
    Ok(Json(agent.ok_or_else(|| not_found(&id))?.into()))
}

#[utoipa::path(operation_id = "delete_agents", delete, path = "/core/agents/{id}", tag = "agents",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsManage>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .delete_agent(&caller.organization_id, &id)
        .await?
    {
        state.changed(&caller.organization_id).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

#[utoipa::path(operation_id = "versions_agents", get, path = "/core/agents/{id}/versions", tag = "agents",
    responses((status = 200, body = ListPage<AgentVersionView>), (status = 404, body = ErrorBody)))]
pub(crate) async fn versions(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsRead>,
    Path(id): Path<String>,
) -> Result<Json<ListPage<AgentVersionView>>, ApiError> {
    let org = &caller.organization_id;
    state
        .store
        .agent(org, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let items = state.store.agent_versions(org, &id).await?;
    Ok(Json(ListPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(operation_id = "create_version_agents", post, path = "/core/agents/{id}/versions", tag = "agents",
    responses((status = 201, description = "The next draft version", body = AgentVersionView),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn create_version(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsManage>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AgentVersionView>), ApiError> {
    let org = &caller.organization_id;
    state
        .store
        .agent(org, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let version = state.store.create_agent_version(org, &id).await?;
    state.changed(&caller.organization_id).await;
    Ok((StatusCode::CREATED, Json(version.into())))
}

#[utoipa::path(operation_id = "publish_agents", post, path = "/core/agents/{id}/versions/{version}/publish", tag = "agents",
    request_body(content = Option<PublishAgentVersion>),
    responses((status = 200, body = AgentVersionView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub(crate) async fn publish(
    State(state): State<AdminState>,
    caller: Caller<needs::AgentsManage>,
    Path((id, version)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<PublishAgentVersion>,
) -> Result<Json<AgentVersionView>, ApiError> {
    let version = positive_int(&version, "version")?;
    if !body.phone_numbers.is_empty() {
        caller.require(Scope::NumbersManage)?;
    }
    let mut v = Violations::new();
    if let Some(direction) = &body.direction {
        v.check(
            direction == "inbound",
            "$.direction",
            "only \"inbound\" is supported",
        );
    }
    for (i, number) in body.phone_numbers.iter().enumerate() {
        v.check(
            is_e164(number),
            &format!("$.phone_numbers[{i}]"),
            "must be an E.164 number such as +14155550100",
        );
    }
    v.finish()?;
    let org = &caller.organization_id;
    state
        .store
        .agent(org, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let published = state
        .store
        .publish_agent_version(org, &id, version, &body.phone_numbers)
        .await?;
    state.changed(&caller.organization_id).await;
    Ok(Json(published.into()))
}
