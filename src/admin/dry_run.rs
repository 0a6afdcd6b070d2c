//! `POST /core/inbound-routing-config/test`: run the stored config (or a
//! definition under test) for a made-up call and show what would happen.
//! Nothing is persisted and no call is needed; `input.timestamp` is the clock.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::auth::{needs, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::validate::Violations;
use super::AdminState;
use crate::routing::{self, AgentRef, CallInput, RunEnv};
use crate::snapshot::{ConfigEntry, OrgSnapshot};

/// The call to simulate; every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DryRunInput {
    #[serde(default)]
    pub caller_number: Option<String>,
    #[serde(default)]
    pub called_number: Option<String>,
    #[serde(default)]
    pub trunk_id: Option<String>,
    /// Ignored: always the caller's organization.
    #[serde(default, rename = "organization_id")]
    #[schema(value_type = Option<String>)]
    pub _organization_id: Option<serde::de::IgnoredAny>,
    /// Default: now.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub sip_headers: Map<String, Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DryRun {
    #[serde(default)]
    pub input: DryRunInput,
    /// A definition to test instead of the stored one.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub workflow_definition: Option<Value>,
    #[serde(default)]
    pub fallback_agent_id: Option<String>,
    #[serde(default)]
    pub fallback_agent_version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DryRunResult {
    /// The output step's fields as rendered (`null` if none was reached).
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    #[schema(value_type = Object)]
    pub decision: routing::Decision,
    /// Each executed step: id, type, result (branch/status), duration, error.
    #[schema(value_type = Vec<Object>)]
    pub trace: Vec<routing::TraceEntry>,
    /// Why the workflow produced no usable output, if it did not.
    pub error: Option<String>,
}

#[utoipa::path(operation_id = "test_inbound_routing_config", post, path = "/core/inbound-routing-config/test",
    tag = "inbound-routing", request_body = DryRun,
    responses((status = 200, body = DryRunResult), (status = 422, body = ErrorBody)))]
pub(crate) async fn test(
    State(state): State<AdminState>,
    caller: Caller<needs::RoutingRead>,
    ApiJson(body): ApiJson<DryRun>,
) -> Result<Json<DryRunResult>, ApiError> {
    let org = &caller.organization_id;
    let snapshot = OrgSnapshot::load(&state.store, org, state.routing.limits()).await?;
    let candidate = match &body.workflow_definition {
        Some(definition) => Some(candidate(&state, definition, &body)?),
        None => None,
    };
    let config = candidate.as_ref().or(snapshot.config.as_ref());
    let input = CallInput {
        caller_number: body.input.caller_number.unwrap_or_default(),
        called_number: body.input.called_number.unwrap_or_default(),
        trunk_id: body.input.trunk_id.unwrap_or_default(),
        organization_id: org.clone(),
        timestamp: body.input.timestamp.unwrap_or_else(Utc::now),
        sip_headers: body.input.sip_headers,
    };
    let env = RunEnv {
        http: state.engine.http.clone(),
        secrets: snapshot.secrets.clone(),
        expression_timeout_ms: state.engine.expression_timeout_ms,
    };
    let routed = snapshot.route(config, &input, &env).await;
    let (output, trace, error) = match routed.run {
        Some(run) => (
            run.raw_output,
            run.trace,
            run.result.err().map(|e| e.to_string()),
        ),
        None => (None, Vec::new(), None),
    };
    Ok(Json(DryRunResult {
        output,
        decision: routed.decision,
        trace,
        error,
    }))
}

/// Compiles a definition under test (422 with every problem) into a config.
fn candidate(
    state: &AdminState,
    definition: &Value,
    body: &DryRun,
) -> Result<ConfigEntry, ApiError> {
    let mut v = Violations::new();
    let plan = routing::compile(definition, state.routing.limits()).map_err(|problems| {
        for p in problems {
            v.push(format!("$.workflow_definition{}", &p.path[1..]), p.message);
        }
    });
    if body.fallback_agent_version.is_some() && body.fallback_agent_id.is_none() {
        v.push(
            "$.fallback_agent_version",
            "cannot be set without fallback_agent_id",
        );
    }
    v.finish()?;
    Ok(ConfigEntry {
        enabled: true,
        fallback: body.fallback_agent_id.clone().map(|agent_id| AgentRef {
            agent_id,
            version: body.fallback_agent_version,
        }),
        plan: plan.map(Arc::new).map_err(|()| String::new()),
    })
}
