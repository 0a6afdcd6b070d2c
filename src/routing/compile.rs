//! Definition → executable [`Plan`], once per config change.
//!
//! Validation reports every problem at once, each with a JSON path relative to
//! the definition (`$.steps[2].next`): shape errors, unknown step types,
//! duplicate or dangling ids, cycles, unreachable steps, dead ends that do not
//! finish in an `output`, expressions that do not parse or are not allowed,
//! output fields of the wrong type, and waits or timeouts beyond the deadline.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::model::*;
use super::plan::*;
use super::schedule;
use super::template::{compile_str, compile_value, Template};

/// Compile-time limits (from `routing.*` configuration).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deadline when the definition sets no `timeout_ms`.
    pub default_timeout_ms: u64,
    /// Largest `timeout_ms` a definition may ask for.
    pub max_timeout_ms: u64,
    pub max_steps: usize,
    pub max_expression_length: usize,
    /// Default per-step timeout of `http` steps (bounded by the deadline).
    pub http_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_timeout_ms: 3_000,
            max_timeout_ms: 10_000,
            max_steps: 200,
            max_expression_length: 4_096,
            http_timeout_ms: 1_000,
        }
    }
}

/// One validation failure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// JSON path within the definition, e.g. `$.steps[1].branches[0].when`.
    pub path: String,
    pub message: String,
}

/// Validates and compiles a definition.
///
/// # Errors
/// Every problem found, in document order.
pub fn compile(definition: &Value, limits: &Limits) -> Result<Plan, Vec<Problem>> {
    let mut c = Compiler {
        limits,
        problems: Vec::new(),
    };
    let raw: RawDefinition = match serde_path_to_error::deserialize(definition) {
        Ok(raw) => raw,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." {
                "$".to_owned()
            } else {
                format!("$.{path}")
            };
            return Err(vec![Problem {
                path,
                message: e.into_inner().to_string(),
            }]);
        }
    };
    let plan = c.definition(&raw);
    if c.problems.is_empty() {
        Ok(plan.expect("a plan exists when nothing is wrong"))
    } else {
        Err(c.problems)
    }
}

struct Compiler<'a> {
    limits: &'a Limits,
    problems: Vec<Problem>,
}

impl Compiler<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn definition(&mut self, raw: &RawDefinition) -> Option<Plan> {
        if raw.version != 1 {
            self.problem("$.version", "only version 1 is supported");
        }
        let deadline_ms = raw.timeout_ms.unwrap_or(self.limits.default_timeout_ms);
        if deadline_ms == 0 || deadline_ms > self.limits.max_timeout_ms {
            let max = self.limits.max_timeout_ms;
            self.problem("$.timeout_ms", format!("must be from 1 to {max} ms"));
        }
        if raw.steps.len() > self.limits.max_steps {
            let max = self.limits.max_steps;
            self.problem("$.steps", format!("at most {max} steps are allowed"));
            return None;
        }
        let steps: Vec<Option<(String, RawStep)>> = raw
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| self.step_shape(i, s))
            .collect();
        let index = self.ids(&steps);
        let compiled: Vec<Option<PlanStep>> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_ref()
                    .and_then(|(id, step)| self.step(i, id, step, &index, deadline_ms))
            })
            .collect();
        let start = match index.get(raw.start.as_str()) {
            Some(&i) => Some(i),
            None => {
                self.problem("$.start", format!("no step has id {:?}", raw.start));
                None
            }
        };
        if let Some(i) = start {
            if !matches!(steps[i], Some((_, RawStep::Input(_)))) {
                self.problem("$.start", "the start step must be the `input` step");
            }
        }
        for (i, s) in steps.iter().enumerate() {
            if matches!(s, Some((_, RawStep::Input(_)))) && Some(i) != start {
                self.problem(
                    format!("$.steps[{i}]"),
                    "only the start step may be an `input` step",
                );
            }
        }
        let compiled: Option<Vec<PlanStep>> = compiled.into_iter().collect();
        let (start, compiled) = (start?, compiled?);
        self.graph(&compiled, start);
        Some(Plan::new(
            compiled,
            start,
            Duration::from_millis(deadline_ms),
        ))
    }

    /// Reads `id` and `type`, then the type's own fields (unknown ones are errors).
    fn step_shape(&mut self, i: usize, value: &Value) -> Option<(String, RawStep)> {
        let path = format!("$.steps[{i}]");
        let Some(object) = value.as_object() else {
            self.problem(path, "a step must be an object");
            return None;
        };
        let id = match object.get("id") {
            Some(Value::String(id)) if is_step_id(id) => Some(id.clone()),
            Some(Value::String(_)) => {
                self.problem(format!("{path}.id"), "must start with a letter or `_` and hold only letters, digits and `_` (it names the step's output in expressions)");
                None
            }
            _ => {
                self.problem(format!("{path}.id"), "is required and must be a string");
                None
            }
        };
        if id.as_deref() == Some("input") {
            self.problem(
                format!("{path}.id"),
                "`input` is reserved for the call's input",
            );
        }
        let kind = match object.get("type") {
            Some(Value::String(t)) => t.as_str(),
            _ => {
                self.problem(format!("{path}.type"), "is required and must be a string");
                return None;
            }
        };
        let mut fields = object.clone();
        for key in ["id", "type"].iter().chain(METADATA_KEYS.iter()) {
            fields.remove(*key);
        }
        let body = Value::Object(fields);
        let step = match kind {
            "input" => self.shape(&path, body).map(RawStep::Input),
            "condition" => self.shape(&path, body).map(RawStep::Condition),
            "http" => self.shape(&path, body).map(RawStep::Http),
            "output" => self.shape(&path, body).map(RawStep::Output),
            "wait" => self.shape(&path, body).map(RawStep::Wait),
            "note" => self.shape(&path, body).map(RawStep::Note),
            "schedule" => self.shape(&path, body).map(RawStep::Schedule),
            "split" => self.shape(&path, body).map(RawStep::Split),
            "code" | "app" => {
                self.problem(format!("{path}.type"), format!("`{kind}` steps are not supported by this router; use http, condition, schedule or split"));
                None
            }
            other => {
                let known = STEP_TYPES.join(", ");
                self.problem(
                    format!("{path}.type"),
                    format!("unknown step type {other:?} (known: {known})"),
                );
                None
            }
        };
        Some((id?, step?))
    }

    fn shape<T: serde::de::DeserializeOwned>(&mut self, path: &str, body: Value) -> Option<T> {
        match serde_path_to_error::deserialize(body) {
            Ok(v) => Some(v),
            Err(e) => {
                let at = e.path().to_string();
                let at = if at == "." {
                    path.to_owned()
                } else {
                    format!("{path}.{at}")
                };
                self.problem(at, e.into_inner().to_string());
                None
            }
        }
    }

    /// Maps ids to positions, reporting duplicates.
    fn ids<'s>(&mut self, steps: &'s [Option<(String, RawStep)>]) -> HashMap<&'s str, usize> {
        let mut index = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            if let Some((id, _)) = s {
                if index.insert(id.as_str(), i).is_some() {
                    self.problem(
                        format!("$.steps[{i}].id"),
                        format!("duplicate step id {id:?}"),
                    );
                }
            }
        }
        index
    }

    fn target(&mut self, path: String, id: &str, index: &HashMap<&str, usize>) -> Option<usize> {
        match index.get(id) {
            Some(&i) => Some(i),
            None => {
                self.problem(path, format!("no step has id {id:?}"));
                None
            }
        }
    }

    fn template(&mut self, value: &Value, path: &str) -> Template {
        let mut errors = Vec::new();
        let t = compile_value(value, path, self.limits.max_expression_length, &mut errors);
        for (p, m) in errors {
            self.problem(p, m);
        }
        t
    }

    fn string_template(&mut self, s: &str, path: &str) -> Template {
        let mut errors = Vec::new();
        let t = compile_str(s, path, self.limits.max_expression_length, &mut errors);
        for (p, m) in errors {
            self.problem(p, m);
        }
        t
    }

    fn step(
        &mut self,
        i: usize,
        id: &str,
        step: &RawStep,
        index: &HashMap<&str, usize>,
        deadline_ms: u64,
    ) -> Option<PlanStep> {
        let p = format!("$.steps[{i}]");
        let kind = match step {
            RawStep::Input(s) => StepKind::Input {
                next: self.target(format!("{p}.next"), &s.next, index)?,
            },
            RawStep::Note(s) => match &s.next {
                Some(next) => StepKind::Note {
                    next: self.target(format!("{p}.next"), next, index)?,
                },
                None => {
                    self.problem(
                        format!("{p}.next"),
                        "a note must continue to another step; only `output` steps end a run",
                    );
                    return None;
                }
            },
            RawStep::Wait(s) => {
                if s.ms >= deadline_ms {
                    self.problem(
                        format!("{p}.ms"),
                        format!("must be shorter than the deadline ({deadline_ms} ms)"),
                    );
                }
                StepKind::Wait {
                    ms: s.ms,
                    next: self.target(format!("{p}.next"), &s.next, index)?,
                }
            }
            RawStep::Condition(s) => self.condition(&p, s, index)?,
            RawStep::Http(s) => self.http(&p, s, index, deadline_ms)?,
            RawStep::Output(s) => self.output(&p, s),
            RawStep::Schedule(s) => self.schedule(&p, s, index)?,
            RawStep::Split(s) => self.split(&p, s, index)?,
        };
        Some(PlanStep {
            id: id.into(),
            kind,
        })
    }

    fn condition(
        &mut self,
        p: &str,
        s: &ConditionStep,
        index: &HashMap<&str, usize>,
    ) -> Option<StepKind> {
        let mut branches = Vec::with_capacity(s.branches.len());
        let mut ok = true;
        for (b, branch) in s.branches.iter().enumerate() {
            let when = match &branch.when {
                Value::Bool(_) | Value::String(_) => {
                    self.template(&branch.when, &format!("{p}.branches[{b}].when"))
                }
                _ => {
                    self.problem(
                        format!("{p}.branches[{b}].when"),
                        "must be a boolean or a {{ }} expression",
                    );
                    Template::Literal(Value::Bool(false))
                }
            };
            let next = self.target(format!("{p}.branches[{b}].next"), &branch.next, index);
            ok &= next.is_some();
            let name = branch.name.clone().unwrap_or_else(|| format!("branch {b}"));
            branches.push(CondBranch {
                name,
                when,
                next: next.unwrap_or(0),
            });
        }
        let default = self.target(format!("{p}.default"), &s.default, index);
        (ok && default.is_some()).then(|| StepKind::Condition {
            branches,
            default: default.unwrap_or(0),
        })
    }

    fn http(
        &mut self,
        p: &str,
        s: &HttpStep,
        index: &HashMap<&str, usize>,
        deadline_ms: u64,
    ) -> Option<StepKind> {
        let method = s.method.to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str()) {
            self.problem(
                format!("{p}.method"),
                "must be GET, POST, PUT, PATCH, DELETE or HEAD",
            );
        }
        let timeout_ms = s
            .timeout_ms
            .unwrap_or(self.limits.http_timeout_ms.min(deadline_ms));
        if timeout_ms == 0 || timeout_ms > deadline_ms {
            self.problem(
                format!("{p}.timeout_ms"),
                format!("must be from 1 to the deadline ({deadline_ms} ms)"),
            );
        }
        let url = self.string_template(&s.url, &format!("{p}.url"));
        if let Template::Literal(Value::String(u)) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                self.problem(format!("{p}.url"), "must be an http:// or https:// URL");
            }
        }
        let headers = s
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.string_template(v, &format!("{p}.headers.{k}")),
                )
            })
            .collect();
        let query = s
            .query
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.string_template(v, &format!("{p}.query.{k}")),
                )
            })
            .collect();
        let body = s
            .body
            .as_ref()
            .map(|b| self.template(b, &format!("{p}.body")));
        let next = self.target(format!("{p}.next"), &s.next, index)?;
        Some(StepKind::Http(Box::new(HttpPlan {
            method,
            url,
            headers,
            query,
            body,
            timeout: Duration::from_millis(timeout_ms),
            next,
        })))
    }

    fn output(&mut self, p: &str, s: &OutputStep) -> StepKind {
        let mut fields = Vec::with_capacity(s.fields.len());
        for (name, value) in &s.fields {
            let path = format!("{p}.fields.{name}");
            let is_expr = matches!(value, Value::String(v) if v.trim_start().starts_with("{{") && v.trim_end().ends_with("}}"));
            let ok = is_expr
                || match name.as_str() {
                    "reject" | "skip_pre_conversation_workflow" => value.is_boolean(),
                    "agent_id" | "initial_context" => value.is_string(),
                    "version" => value.as_u64().is_some_and(|v| v >= 1),
                    "custom_metadata" => value.is_object(),
                    _ => true,
                };
            if !ok {
                let expected = match name.as_str() {
                    "reject" | "skip_pre_conversation_workflow" => "a boolean",
                    "agent_id" | "initial_context" => "a string",
                    "version" => "a positive integer",
                    _ => "an object",
                };
                self.problem(
                    path.clone(),
                    format!("must be {expected} or a {{{{ }}}} expression"),
                );
            }
            fields.push((name.clone(), self.template(value, &path)));
        }
        StepKind::Output { fields }
    }

    fn schedule(
        &mut self,
        p: &str,
        s: &ScheduleStep,
        index: &HashMap<&str, usize>,
    ) -> Option<StepKind> {
        let compiled = schedule::compile(s).map_err(|errors| {
            for (rel, message) in errors {
                self.problem(format!("{p}.{rel}"), message);
            }
        });
        let open = self.target(format!("{p}.branches.open"), &s.branches.open, index);
        let closed = self.target(format!("{p}.branches.closed"), &s.branches.closed, index);
        Some(StepKind::Schedule {
            schedule: compiled.ok()?,
            open: open?,
            closed: closed?,
        })
    }

    fn split(&mut self, p: &str, s: &SplitStep, index: &HashMap<&str, usize>) -> Option<StepKind> {
        let key = self.string_template(&s.key, &format!("{p}.key"));
        if s.branches.is_empty() {
            self.problem(format!("{p}.branches"), "needs at least one branch");
        }
        let total: u64 = s.branches.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 && !s.branches.is_empty() {
            self.problem(
                format!("{p}.branches"),
                "weights must add up to more than 0",
            );
        }
        let mut branches = Vec::new();
        let mut ok = true;
        for (b, branch) in s.branches.iter().enumerate() {
            let next = self.target(format!("{p}.branches[{b}].next"), &branch.next, index);
            ok &= next.is_some();
            let name = branch.name.clone().unwrap_or_else(|| format!("branch {b}"));
            branches.push(SplitArm {
                name,
                weight: branch.weight,
                next: next.unwrap_or(0),
            });
        }
        (ok && total > 0).then_some(StepKind::Split {
            key,
            branches,
            total,
        })
    }

    /// Cycles and unreachable steps. Dead ends cannot exist: every non-output
    /// step has a successor, so in a DAG every path ends at an output.
    fn graph(&mut self, steps: &[PlanStep], start: usize) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; steps.len()];
        // Iterative DFS: (node, next successor index).
        let mut stack = vec![(start, 0usize)];
        marks[start] = Mark::Active;
        while let Some((node, k)) = stack.last_mut() {
            let succ = steps[*node].kind.successors();
            if *k < succ.len() {
                let next = succ[*k];
                *k += 1;
                match marks[next] {
                    Mark::New => {
                        marks[next] = Mark::Active;
                        stack.push((next, 0));
                    }
                    Mark::Active => {
                        let id = &steps[next].id;
                        self.problem(
                            format!("$.steps[{next}]"),
                            format!("step {id:?} is part of a cycle"),
                        );
                    }
                    Mark::Done => {}
                }
            } else {
                marks[*node] = Mark::Done;
                stack.pop();
            }
        }
        for (i, mark) in marks.iter().enumerate() {
            if *mark == Mark::New {
                let id = &steps[i].id;
                self.problem(
                    format!("$.steps[{i}]"),
                    format!("step {id:?} is unreachable from the start"),
                );
            }
        }
    }
}

fn is_step_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 64
}
