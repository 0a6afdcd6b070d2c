//! The output contract (spec: "Workflow output") and its normalization:
//! missing `reject` is false, missing `version` means latest published,
//! `null` counts as missing, unknown fields are ignored (and noted in the
//! trace), a wrong type makes the whole output invalid.

use serde::Serialize;
use serde_json::{Map, Value};

/// A normalized workflow output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Output {
    pub reject: bool,
    pub agent_id: Option<String>,
    /// `None` = the agent's latest published version.
    pub version: Option<i64>,
    pub initial_context: String,
    pub custom_metadata: Option<Map<String, Value>>,
    pub skip_pre_conversation_workflow: bool,
    /// Fields the contract does not know; ignored.
    #[serde(skip)]
    pub ignored_fields: Vec<String>,
}

/// Normalizes the fields an `output` step produced.
///
/// # Errors
/// A message naming the first field of the wrong type.
pub(crate) fn normalize(fields: &Map<String, Value>) -> Result<Output, String> {
    let mut out = Output::default();
    for (name, value) in fields {
        if value.is_null() {
            continue;
        }
        let wrong =
            |expected: &str| format!("output field `{name}` must be {expected}, got {value}");
        match name.as_str() {
            "reject" => out.reject = value.as_bool().ok_or_else(|| wrong("a boolean"))?,
            "skip_pre_conversation_workflow" => {
                out.skip_pre_conversation_workflow =
                    value.as_bool().ok_or_else(|| wrong("a boolean"))?;
            }
            "agent_id" => {
                let id = value
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| wrong("a non-empty string"))?;
                out.agent_id = Some(id.to_owned());
            }
            "version" => {
                out.version =
                    Some(positive_integer(value).ok_or_else(|| wrong("a positive integer"))?)
            }
            "initial_context" => {
                out.initial_context = value.as_str().ok_or_else(|| wrong("a string"))?.to_owned()
            }
            "custom_metadata" => {
                out.custom_metadata =
                    Some(value.as_object().ok_or_else(|| wrong("an object"))?.clone())
            }
            other => out.ignored_fields.push(other.to_owned()),
        }
    }
    Ok(out)
}

/// `3` or `3.0`, at least 1.
fn positive_integer(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return (n >= 1).then_some(n);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f >= 1.0 && f <= 2f64.powi(53)).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn norm(v: Value) -> Result<Output, String> {
        normalize(v.as_object().unwrap())
    }

    #[test]
    fn defaults_and_types() {
        let out =
            norm(json!({"agent_id": "a", "version": 3.0, "extra": 1, "initial_context": null}))
                .unwrap();
        assert_eq!(
            (out.reject, out.version, out.initial_context.as_str()),
            (false, Some(3), "")
        );
        assert_eq!(out.ignored_fields, ["extra"]);
        for bad in [
            json!({"reject": "yes"}),
            json!({"version": 0}),
            json!({"version": 1.5}),
            json!({"agent_id": 7}),
            json!({"agent_id": ""}),
            json!({"custom_metadata": [1]}),
            json!({"initial_context": 5}),
            json!({"skip_pre_conversation_workflow": 1}),
        ] {
            assert!(norm(bad.clone()).is_err(), "{bad}");
        }
    }
}
