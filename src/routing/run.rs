//! Running a [`Plan`] for one call under its hard deadline.
//!
//! The run alternates synchronous stretches (input, condition, schedule,
//! split, note, output: evaluated back to back with this thread's JSONata
//! evaluator) and awaits (`http`, `wait`). Engine values never cross an
//! `.await`; the context between stretches is plain JSON. Past the deadline
//! the whole run is dropped, which cancels an HTTP request in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use indexmap::IndexMap;
use jsonata_core::value::JValue;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::expr::{with_session, CallScope, Session};
use super::http::{HttpClient, HttpRequest};
use super::output::{normalize, Output};
use super::plan::{Plan, StepKind};
use super::template::Template;

/// The workflow input of the spec: what the call looks like.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CallInput {
    pub caller_number: String,
    pub called_number: String,
    pub trunk_id: String,
    pub organization_id: String,
    /// When the call arrived; also what `$now()` returns.
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub sip_headers: Map<String, Value>,
}

impl CallInput {
    /// The input as the engine sees it (`input.*`), built directly rather
    /// than through a JSON copy; `timestamp` is the pre-formatted `$now()`.
    fn to_engine(&self, timestamp: &str) -> JValue {
        let headers: IndexMap<String, JValue> = self
            .sip_headers
            .iter()
            .map(|(k, v)| (k.clone(), engine_value(v)))
            .collect();
        let fields: IndexMap<String, JValue> = IndexMap::from([
            ("caller_number".into(), self.caller_number.as_str().into()),
            ("called_number".into(), self.called_number.as_str().into()),
            ("trunk_id".into(), self.trunk_id.as_str().into()),
            (
                "organization_id".into(),
                self.organization_id.as_str().into(),
            ),
            ("timestamp".into(), timestamp.into()),
            ("sip_headers".into(), headers.into()),
        ]);
        fields.into()
    }
}

/// A header value (a string, as the SIP side gives them) without a detour.
fn engine_value(v: &Value) -> JValue {
    match v {
        Value::String(s) => JValue::from(s.as_str()),
        other => JValue::from(other.clone()),
    }
}

/// What a run may use besides its input.
#[derive(Debug, Clone)]
pub struct RunEnv {
    pub http: HttpClient,
    /// The organization's workflow secrets, for `$secret(name)`.
    pub secrets: Arc<HashMap<String, String>>,
    /// CPU budget of one expression evaluation.
    pub expression_timeout_ms: u64,
}

/// One executed step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceEntry {
    pub step: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Branch taken, HTTP status, or what the step did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a run produced no usable output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("step {step:?} failed: {message}")]
    Step { step: String, message: String },
    #[error("the workflow did not finish within {0} ms")]
    Timeout(u64),
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    #[error("the routing config does not compile: {0}")]
    Invalid(String),
}

/// The result of a run: the normalized output or why there is none, the
/// output step's raw fields, and the trace.
#[derive(Debug, Clone)]
pub struct Run {
    pub result: Result<Output, RunError>,
    pub raw_output: Option<Value>,
    pub trace: Vec<TraceEntry>,
}

/// Runs `plan` for `input`, never longer than the plan's deadline.
pub async fn run(plan: &Plan, input: &CallInput, env: &RunEnv) -> Run {
    let mut state = State {
        trace: Vec::new(),
        raw_output: None,
    };
    let deadline = Instant::now() + plan.deadline;
    let result =
        match tokio::time::timeout_at(deadline, execute(plan, input, env, &mut state)).await {
            Ok(result) => result,
            Err(_) => Err(RunError::Timeout(plan.deadline.as_millis() as u64)),
        };
    Run {
        result,
        raw_output: state.raw_output,
        trace: state.trace,
    }
}

struct State {
    trace: Vec<TraceEntry>,
    raw_output: Option<Value>,
}

/// Where a synchronous stretch stopped.
enum Pause {
    Done(Output),
    Wait {
        ms: u64,
        next: usize,
    },
    Http {
        request: HttpRequest,
        timeout: Duration,
        next: usize,
    },
}

async fn execute(
    plan: &Plan,
    input: &CallInput,
    env: &RunEnv,
    state: &mut State,
) -> Result<Output, RunError> {
    let mut context = Map::new();
    let scope = CallScope {
        now_iso: input.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
        now_millis: input.timestamp.timestamp_millis(),
        secrets: env.secrets.clone(),
    };
    let mut cursor = plan.start;
    loop {
        let started = Instant::now();
        let pause = stretch(plan, &mut cursor, &mut context, input, &scope, env, state)?;
        // `cursor` is still at the step that paused.
        let id = || plan.steps[cursor].id.to_string();
        match pause {
            Pause::Done(output) => return Ok(output),
            Pause::Wait { ms, next } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                state.trace.push(entry(
                    id(),
                    "wait",
                    Some(format!("waited {ms} ms")),
                    started,
                    None,
                ));
                cursor = next;
            }
            Pause::Http {
                request,
                timeout,
                next,
            } => {
                // The run's deadline (the enclosing `timeout_at`) cuts this
                // short when it comes first, and reports a timeout.
                // Boxed: the HTTP client's future is large, and inline it
                // would make every call's task that large, HTTP step or not.
                match Box::pin(env.http.execute(request, timeout)).await {
                    Ok(response) => {
                        let status = response["status_code"].to_string();
                        state.trace.push(entry(
                            id(),
                            "http",
                            Some(format!("status {status}")),
                            started,
                            None,
                        ));
                        context.insert(id(), response);
                        cursor = next;
                    }
                    Err(message) => {
                        state
                            .trace
                            .push(entry(id(), "http", None, started, Some(message.clone())));
                        return Err(RunError::Step {
                            step: id(),
                            message,
                        });
                    }
                }
            }
        }
    }
}

fn entry(
    step: String,
    kind: &'static str,
    result: Option<String>,
    started: Instant,
    error: Option<String>,
) -> TraceEntry {
    TraceEntry {
        step,
        kind,
        result,
        duration_us: started.elapsed().as_micros() as u64,
        error,
    }
}

/// Runs steps back to back until one needs to await or the run ends.
fn stretch(
    plan: &Plan,
    cursor: &mut usize,
    context: &mut Map<String, Value>,
    input: &CallInput,
    scope: &CallScope,
    env: &RunEnv,
    state: &mut State,
) -> Result<Pause, RunError> {
    let mut fields: IndexMap<String, JValue> = IndexMap::with_capacity(context.len() + 1);
    fields.insert("input".into(), input.to_engine(&scope.now_iso));
    for (step, value) in context.iter() {
        fields.insert(step.clone(), JValue::from(value.clone()));
    }
    let mut data = JValue::from(fields);
    with_session(scope, env.expression_timeout_ms, |session| loop {
        let step = &plan.steps[*cursor];
        let started = Instant::now();
        let fail = |state: &mut State, message: String| {
            state.trace.push(entry(
                step.id.to_string(),
                step.kind.type_name(),
                None,
                started,
                Some(message.clone()),
            ));
            RunError::Step {
                step: step.id.to_string(),
                message,
            }
        };
        let (result, next) = match &step.kind {
            StepKind::Input { next } | StepKind::Note { next } => (None, *next),
            StepKind::Wait { ms, next } => {
                return Ok(Pause::Wait {
                    ms: *ms,
                    next: *next,
                })
            }
            StepKind::Http(h) => {
                let request = render_request(h, session, &data).map_err(|m| fail(state, m))?;
                return Ok(Pause::Http {
                    request,
                    timeout: h.timeout,
                    next: h.next,
                });
            }
            StepKind::Condition { branches, default } => {
                let mut taken = None;
                for branch in branches {
                    if branch
                        .when
                        .truthy(session, &data)
                        .map_err(|e| fail(state, e.to_string()))?
                    {
                        taken = Some((branch.name.as_str(), branch.next));
                        break;
                    }
                }
                let (name, next) = taken.unwrap_or(("default", *default));
                (Some(name.to_owned()), next)
            }
            StepKind::Schedule {
                schedule,
                open,
                closed,
            } => {
                if schedule.is_open(input.timestamp) {
                    (Some("open".to_owned()), *open)
                } else {
                    (Some("closed".to_owned()), *closed)
                }
            }
            StepKind::Split {
                key,
                branches,
                total,
            } => {
                let value = key
                    .render(session, &data)
                    .map_err(|e| fail(state, e.to_string()))?;
                let arm = super::split::pick(&step.id, value.as_ref(), branches, *total);
                (Some(arm.name.clone()), arm.next)
            }
            StepKind::Output { fields } => {
                let rendered = render_fields(fields, session, &data).map_err(|m| fail(state, m))?;
                let output = normalize(&rendered);
                let note = output
                    .as_ref()
                    .ok()
                    .filter(|o| !o.ignored_fields.is_empty())
                    .map(|o| {
                        format!(
                            "ignored unknown output fields: {}",
                            o.ignored_fields.join(", ")
                        )
                    });
                state.trace.push(entry(
                    step.id.to_string(),
                    "output",
                    note,
                    started,
                    output.as_ref().err().cloned(),
                ));
                state.raw_output = Some(Value::Object(rendered));
                return output.map(Pause::Done).map_err(RunError::InvalidOutput);
            }
        };
        if let Some(branch) = &result {
            let mut out = Map::with_capacity(1);
            out.insert("branch".into(), Value::String(branch.clone()));
            let out = Value::Object(out);
            if let Some(map) = data.as_object_mut() {
                map.insert(step.id.to_string(), JValue::from(out.clone()));
            }
            context.insert(step.id.to_string(), out);
        }
        state.trace.push(entry(
            step.id.to_string(),
            step.kind.type_name(),
            result,
            started,
            None,
        ));
        *cursor = next;
    })
}

fn render_fields(
    fields: &[(String, Template)],
    session: &mut Session<'_>,
    data: &JValue,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::with_capacity(fields.len());
    for (name, template) in fields {
        if let Some(v) = template
            .render(session, data)
            .map_err(|e| format!("field `{name}`: {e}"))?
        {
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

fn render_request(
    h: &super::plan::HttpPlan,
    session: &mut Session<'_>,
    data: &JValue,
) -> Result<HttpRequest, String> {
    let text = |t: &Template, session: &mut Session<'_>, what: &str| -> Result<String, String> {
        match t
            .render(session, data)
            .map_err(|e| format!("{what}: {e}"))?
        {
            Some(Value::String(s)) => Ok(s),
            Some(Value::Null) | None => Ok(String::new()),
            Some(other) => Ok(other.to_string()),
        }
    };
    let url = text(&h.url, session, "url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("url {url:?} is not http:// or https://"));
    }
    let mut headers = Vec::with_capacity(h.headers.len());
    for (k, t) in &h.headers {
        headers.push((k.clone(), text(t, session, k)?));
    }
    let mut query = Vec::with_capacity(h.query.len());
    for (k, t) in &h.query {
        query.push((k.clone(), text(t, session, k)?));
    }
    let body = match &h.body {
        Some(t) => t.render(session, data).map_err(|e| format!("body: {e}"))?,
        None => None,
    };
    Ok(HttpRequest {
        method: h.method.clone(),
        url,
        headers,
        query,
        body,
    })
}
