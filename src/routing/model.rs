//! The v1 workflow definition as stored and posted (serde).
//!
//! A definition is a DAG of steps. Every step has an `id` and a `type`; the
//! product's workflow builder may add `name`, `description` and `position`,
//! which the router ignores. Field values that hold expressions are strings
//! with `{{ }}` (see `template`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Keys any step may carry for the builder's benefit; ignored by the router.
pub(crate) const METADATA_KEYS: [&str; 3] = ["name", "description", "position"];

/// The top level of a definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefinition {
    pub version: u64,
    pub start: String,
    /// Parsed one by one so that every step's problems are reported.
    pub steps: Vec<Value>,
    /// Per-organization deadline override, capped by `routing.max_timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Builder metadata, accepted and ignored.
    #[serde(default, rename = "name")]
    pub _name: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "description")]
    pub _description: Option<serde::de::IgnoredAny>,
}

/// One step, by `type`.
#[derive(Debug, Clone)]
pub(crate) enum RawStep {
    Input(InputStep),
    Condition(ConditionStep),
    Http(HttpStep),
    Output(OutputStep),
    Wait(WaitStep),
    Note(NoteStep),
    Schedule(ScheduleStep),
    Split(SplitStep),
}

/// The step types a definition may use (`code` and `app` are known but refused).
pub(crate) const STEP_TYPES: [&str; 8] = [
    "input",
    "condition",
    "http",
    "output",
    "wait",
    "note",
    "schedule",
    "split",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputStep {
    pub next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionStep {
    /// Tried in order; the first whose `when` is true wins.
    pub branches: Vec<ConditionBranch>,
    pub default: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionBranch {
    #[serde(default)]
    pub name: Option<String>,
    /// A boolean, or a `{{ }}` expression.
    pub when: Value,
    pub next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpStep {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    pub next: String,
}

fn default_method() -> String {
    "GET".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputStep {
    /// The output contract's fields; values may be templates.
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitStep {
    pub ms: u64,
    pub next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteStep {
    /// The note itself; the router ignores it.
    #[serde(default, rename = "text")]
    pub _text: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleStep {
    /// IANA time zone, e.g. `America/New_York`.
    pub timezone: String,
    /// Day (`mon`..`sun`), range (`mon-fri`) or `daily` → `["09:00-17:30", ...]`.
    pub open: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub closed_dates: Vec<String>,
    pub branches: ScheduleBranches,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBranches {
    pub open: String,
    pub closed: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitStep {
    /// Expression whose value is hashed, e.g. `{{ input.caller_number }}`.
    pub key: String,
    pub branches: Vec<SplitBranch>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitBranch {
    #[serde(default)]
    pub name: Option<String>,
    pub weight: u32,
    pub next: String,
}
