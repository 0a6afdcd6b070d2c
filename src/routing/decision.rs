//! Decision resolution, exactly as the spec's flow: reject → 603; a resolvable
//! agent → 302; anything else → the fallback agent, else 603. Without a
//! config (or disabled), the number's own assignment decides.

use serde::Serialize;
use serde_json::{Map, Value};

use super::output::Output;
use super::run::RunError;

/// Why the call went where it went (machine-readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The workflow returned `reject: true`.
    Rejected,
    /// The workflow chose a resolvable agent.
    Agent,
    WorkflowError,
    WorkflowTimeout,
    InvalidOutput,
    /// The output named an agent this organization does not have.
    UnknownAgent,
    /// The output asked for a version that is not published (or there is none).
    UnpublishedVersion,
    /// The output had neither `reject: true` nor an `agent_id`.
    NoAgentInOutput,
    /// No routing config; the number has no (resolvable) agent either.
    NoConfig,
    /// The config is disabled; the number has no (resolvable) agent either.
    Disabled,
    /// No config or disabled: the number's own agent answers.
    NumberAssignment,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Agent => "agent",
            Self::WorkflowError => "workflow_error",
            Self::WorkflowTimeout => "workflow_timeout",
            Self::InvalidOutput => "invalid_output",
            Self::UnknownAgent => "unknown_agent",
            Self::UnpublishedVersion => "unpublished_version",
            Self::NoAgentInOutput => "no_agent_in_output",
            Self::NoConfig => "no_config",
            Self::Disabled => "disabled",
            Self::NumberAssignment => "number_assignment",
        }
    }
}

/// What to do with the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `302` to the agent.
    Redirect,
    /// `603 Decline`.
    Reject,
}

/// An agent reference: id and optional pinned version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRef {
    pub agent_id: String,
    pub version: Option<i64>,
}

/// A resolved agent: the version that will answer and where to send the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAgent {
    pub version: i64,
    pub sip_uri: Option<String>,
}

/// Why an agent reference does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    UnknownAgent,
    UnpublishedVersion,
}

/// The organization's agents, as the decision sees them.
pub trait AgentDirectory {
    /// The published version to use (`version` or the latest published).
    fn resolve(&self, agent_id: &str, version: Option<i64>) -> Result<ResolvedAgent, Unresolved>;
}

/// The routing decision for one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    pub agent_id: Option<String>,
    /// The resolved version number (never "latest").
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_uri: Option<String>,
    /// `302` or `603`.
    pub sip_status: u16,
    /// Whether the fallback agent was used.
    pub fallback: bool,
    /// Human-readable detail (e.g. the workflow error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub initial_context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<Map<String, Value>>,
    pub skip_pre_conversation_workflow: bool,
}

impl Decision {
    fn reject(reason: Reason, detail: Option<String>) -> Self {
        Self {
            action: Action::Reject,
            reason,
            agent_id: None,
            version: None,
            sip_uri: None,
            sip_status: 603,
            fallback: false,
            detail,
            initial_context: String::new(),
            custom_metadata: None,
            skip_pre_conversation_workflow: false,
        }
    }

    fn redirect(reason: Reason, agent_id: &str, agent: ResolvedAgent) -> Self {
        Self {
            action: Action::Redirect,
            reason,
            agent_id: Some(agent_id.to_owned()),
            version: Some(agent.version),
            sip_uri: agent.sip_uri,
            sip_status: 302,
            ..Self::reject(reason, None)
        }
    }
}

/// Resolves a workflow run into a decision.
pub fn decide(
    result: &Result<Output, RunError>,
    fallback: Option<&AgentRef>,
    agents: &dyn AgentDirectory,
) -> Decision {
    let output = match result {
        Ok(output) => output,
        Err(error) => {
            let reason = match error {
                RunError::Timeout(_) => Reason::WorkflowTimeout,
                RunError::InvalidOutput(_) => Reason::InvalidOutput,
                RunError::Step { .. } | RunError::Invalid(_) => Reason::WorkflowError,
            };
            return with_fallback(reason, error.to_string(), fallback, agents);
        }
    };
    if output.reject {
        return Decision::reject(Reason::Rejected, None);
    }
    let Some(agent_id) = &output.agent_id else {
        return with_fallback(
            Reason::NoAgentInOutput,
            "the output named no agent".to_owned(),
            fallback,
            agents,
        );
    };
    match agents.resolve(agent_id, output.version) {
        Ok(agent) => Decision {
            initial_context: output.initial_context.clone(),
            custom_metadata: output.custom_metadata.clone(),
            skip_pre_conversation_workflow: output.skip_pre_conversation_workflow,
            ..Decision::redirect(Reason::Agent, agent_id, agent)
        },
        Err(unresolved) => {
            let (reason, detail) = describe(unresolved, agent_id, output.version);
            with_fallback(reason, detail, fallback, agents)
        }
    }
}

/// No config (`enabled == None`) or a disabled one: the number's own agent.
pub fn decide_without_workflow(
    enabled: Option<bool>,
    assignment: Option<&AgentRef>,
    agents: &dyn AgentDirectory,
) -> Decision {
    let reason = if enabled.is_some() {
        Reason::Disabled
    } else {
        Reason::NoConfig
    };
    let Some(assigned) = assignment else {
        return Decision::reject(reason, Some("the number has no agent assigned".to_owned()));
    };
    match agents.resolve(&assigned.agent_id, assigned.version) {
        Ok(agent) => Decision::redirect(Reason::NumberAssignment, &assigned.agent_id, agent),
        Err(unresolved) => Decision::reject(
            reason,
            Some(describe(unresolved, &assigned.agent_id, assigned.version).1),
        ),
    }
}

fn with_fallback(
    reason: Reason,
    detail: String,
    fallback: Option<&AgentRef>,
    agents: &dyn AgentDirectory,
) -> Decision {
    let Some(fb) = fallback else {
        return Decision::reject(reason, Some(format!("{detail}; no fallback agent")));
    };
    match agents.resolve(&fb.agent_id, fb.version) {
        Ok(agent) => Decision {
            fallback: true,
            detail: Some(detail),
            ..Decision::redirect(reason, &fb.agent_id, agent)
        },
        Err(unresolved) => {
            let (_, why) = describe(unresolved, &fb.agent_id, fb.version);
            Decision::reject(reason, Some(format!("{detail}; fallback unusable: {why}")))
        }
    }
}

fn describe(unresolved: Unresolved, agent_id: &str, version: Option<i64>) -> (Reason, String) {
    match (unresolved, version) {
        (Unresolved::UnknownAgent, _) => (
            Reason::UnknownAgent,
            format!("agent {agent_id:?} does not exist"),
        ),
        (Unresolved::UnpublishedVersion, Some(v)) => (
            Reason::UnpublishedVersion,
            format!("version {v} of agent {agent_id:?} is not published"),
        ),
        (Unresolved::UnpublishedVersion, None) => (
            Reason::UnpublishedVersion,
            format!("agent {agent_id:?} has no published version"),
        ),
    }
}
