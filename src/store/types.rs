//! Records the store reads and writes. Plain data; JSON columns are decoded
//! here so callers never see serialized text.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::token::{Scope, TokenKind};

/// An organization: the tenant every other record belongs to.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A user who may hold personal access tokens and belong to organizations.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A stored API token (never the secret itself).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: String,
    pub kind: TokenKind,
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What is needed to store a new token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub kind: TokenKind,
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub secret_hash: String,
}

/// An AI voice agent that calls can be redirected to.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    /// Where calls for this agent are redirected; `null` means
    /// `sip:<id>@<redirect.agent_domain>`.
    pub sip_uri: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Writable fields of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFields {
    pub name: String,
    pub sip_uri: Option<String>,
}

/// One version of an agent.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct AgentVersion {
    pub agent_id: String,
    pub version: i64,
    /// `draft` or `published`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

/// A carrier SIP trunk: where calls for an organization come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Trunk {
    pub id: String,
    pub fields: TrunkFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Writable fields of a trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkFields {
    pub name: String,
    /// Source networks in CIDR form, e.g. `203.0.113.0/24`.
    pub inbound_addresses: Vec<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub trust_asserted_identity: bool,
    pub default_country_code: Option<String>,
}

/// A phone number owned by an organization and reached through one trunk.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhoneNumber {
    pub id: String,
    #[serde(flatten)]
    pub fields: PhoneNumberFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Writable fields of a phone number.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhoneNumberFields {
    /// E.164, e.g. `+14155550100`.
    pub phone_number: String,
    pub trunk_id: String,
    pub inbound_agent_id: Option<String>,
    /// `null` means the agent's latest published version.
    pub inbound_agent_version: Option<i64>,
}

/// The organization's inbound-routing config, as the spec defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    pub id: String,
    pub organization_id: String,
    pub fields: RoutingConfigFields,
    /// The revision that produced this state; the API's ETag.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Writable fields of the routing config.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RoutingConfigFields {
    pub workflow_definition: Value,
    pub fallback_agent_id: Option<String>,
    pub fallback_agent_version: Option<i64>,
    pub enabled: bool,
}

/// What kind of change a revision records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    Restore,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Restore => "restore",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "create" => Some(Self::Create),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            "restore" => Some(Self::Restore),
            _ => None,
        }
    }
}

/// One entry of the routing config's audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRevision {
    pub revision: i64,
    pub change: ChangeKind,
    /// The config after the change; `None` after a delete.
    pub config: Option<RoutingConfigFields>,
    /// Token id that made the change.
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

/// A page of a list: the items and the cursor for the next page, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Paging parameters: at most `limit` items with ids greater than `after`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

/// One routing decision, as the decision log stores it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Time-ordered id (`dec_<micros hex><random>`); the 302's `X-Inroute-Decision-Id`.
    pub id: String,
    pub organization_id: String,
    pub call_id: String,
    pub trunk_id: Option<String>,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    pub received_at: DateTime<Utc>,
    /// INVITE received → final response decided.
    pub duration_us: i64,
    /// `redirect`, `reject`, `forbidden`, `not_found`, `unavailable`.
    pub outcome: String,
    pub reason: String,
    pub agent_id: Option<String>,
    pub agent_version: Option<i64>,
    pub sip_status: i64,
    pub initial_context: Option<String>,
    pub custom_metadata: Option<Value>,
    /// The workflow trace (array of steps), if a workflow ran.
    pub trace: Option<JsonText>,
}

/// A JSON document kept as its text: encoded once on the call path, written
/// as is, and served as JSON (not as a string) by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// Encodes `value`.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Self {
        Self(serde_json::to_string(value).expect("in-memory values always serialize"))
    }

    /// Takes stored text, checking that it is JSON.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<&serde_json::value::RawValue>(&text)?;
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Filters of the decision log API; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub call_id: Option<String>,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}
