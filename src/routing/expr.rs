//! JSONata expressions: parsed and vetted once at compile time, evaluated
//! synchronously per call.
//!
//! `jsonata-core`'s syntax tree is `Send` and shared in the compiled plan; its
//! evaluator and values are not (`Rc`), so each worker thread keeps its own
//! evaluator, and no engine value lives across an `.await` (the runner only
//! evaluates inside synchronous stretches). The host functions `$now()`,
//! `$millis()` (the call's `input.timestamp`, so a run is reproducible) and
//! `$secret(name)` read the call's scope from a thread-local set around each
//! evaluation. A panic inside the engine is caught and becomes an error; the
//! evaluator that panicked is discarded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use jsonata_core::ast::AstNode;
use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError, EvaluatorOptions};
use jsonata_core::value::JValue;

/// Built-ins refused at validation: they evaluate code chosen at run time.
const FORBIDDEN_FUNCTIONS: [&str; 1] = ["eval"];

/// Deepest `(`/`[`/`{` nesting accepted; the engine's parser recurses per level.
const MAX_NESTING: usize = 64;

/// A vetted, parsed expression. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Expr {
    ast: Arc<AstNode>,
}

impl Expr {
    /// Parses and vets `source` (the text between `{{` and `}}`).
    pub(crate) fn parse(source: &str, max_len: usize) -> Result<Self, String> {
        let source = source.trim();
        if source.is_empty() {
            return Err("empty expression".to_owned());
        }
        if source.len() > max_len {
            return Err(format!("expression longer than {max_len} characters"));
        }
        if nesting_depth(source) > MAX_NESTING {
            return Err(format!(
                "expression nested deeper than {MAX_NESTING} levels"
            ));
        }
        let parsed = catch_unwind(|| jsonata_core::parser::parse(source))
            .map_err(|_| "the expression parser failed on this input".to_owned())?;
        let ast = parsed.map_err(|e| format!("invalid JSONata: {e}"))?;
        if let Some(name) = forbidden_function(&ast) {
            return Err(format!("${name} is not allowed in routing workflows"));
        }
        Ok(Self { ast: Arc::new(ast) })
    }
}

/// Bracket depth outside string literals (a cheap guard before parsing).
fn nesting_depth(source: &str) -> usize {
    let (mut depth, mut max, mut quote, mut escaped) = (0usize, 0usize, None, false);
    for c in source.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' | '`' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// Finds a call or reference to a forbidden built-in anywhere in the tree,
/// walking its serialized form so every node kind is covered.
fn forbidden_function(ast: &AstNode) -> Option<&'static str> {
    let tree = serde_json::to_value(ast).ok()?;
    let mut stack = vec![&tree];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let named = match (key.as_str(), value) {
                        ("Variable", serde_json::Value::String(name)) => Some(name.as_str()),
                        ("Function", serde_json::Value::Object(f)) => {
                            f.get("name").and_then(|n| n.as_str())
                        }
                        _ => None,
                    };
                    if let Some(hit) =
                        named.and_then(|n| FORBIDDEN_FUNCTIONS.iter().find(|f| **f == n))
                    {
                        return Some(hit);
                    }
                    stack.push(value);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    None
}

/// Converts an engine value to JSON: integral numbers become integers,
/// functions and other engine-only values become `null`.
pub(crate) fn to_json(value: &JValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        JValue::Null | JValue::Undefined => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => {
            Value::from(*n as i64)
        }
        JValue::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        JValue::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        _ => Value::Null,
    }
}

/// What host functions can see during one call's evaluations.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallScope {
    /// `$now()`: the call's timestamp, ISO 8601 with milliseconds.
    pub now_iso: String,
    /// `$millis()`.
    pub now_millis: i64,
    /// `$secret(name)`.
    pub secrets: Arc<HashMap<String, String>>,
}

/// Why an evaluation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum EvalError {
    #[error("{0}")]
    Engine(String),
    #[error("the expression engine panicked")]
    Panicked,
}

thread_local! {
    static EVALUATOR: RefCell<Option<(u64, Evaluator)>> = const { RefCell::new(None) };
    static SCOPE: RefCell<CallScope> = RefCell::new(CallScope::default());
}

/// Runs `f` with this thread's evaluator and `scope` visible to host
/// functions. Set once per synchronous stretch of a run, not per expression.
pub(crate) fn with_session<R>(
    scope: &CallScope,
    timeout_ms: u64,
    f: impl FnOnce(&mut Session<'_>) -> R,
) -> R {
    SCOPE.with(|s| s.borrow_mut().clone_from(scope));
    EVALUATOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_some_and(|(t, _)| *t != timeout_ms) {
            *slot = None;
        }
        f(&mut Session {
            slot: &mut slot,
            timeout_ms,
        })
    })
}

/// This thread's evaluator, lent for one synchronous stretch.
pub(crate) struct Session<'a> {
    slot: &'a mut Option<(u64, Evaluator)>,
    timeout_ms: u64,
}

impl Session<'_> {
    /// Evaluates `expr` against `data`, bounded by the session's timeout.
    pub(crate) fn eval(&mut self, expr: &Expr, data: &JValue) -> Result<JValue, EvalError> {
        let timeout_ms = self.timeout_ms;
        let (_, evaluator) = self
            .slot
            .get_or_insert_with(|| (timeout_ms, new_evaluator(timeout_ms)));
        match catch_unwind(AssertUnwindSafe(|| evaluator.evaluate(&expr.ast, data))) {
            Ok(result) => result.map_err(|e| EvalError::Engine(e.to_string())),
            Err(_) => {
                *self.slot = None;
                Err(EvalError::Panicked)
            }
        }
    }
}

fn new_evaluator(timeout_ms: u64) -> Evaluator {
    let options = EvaluatorOptions {
        timeout_ms: Some(timeout_ms),
        cancel: None,
        max_stack_depth: Some(500),
        max_sequence_length: Some(100_000),
    };
    let mut evaluator = Evaluator::with_options(Context::new(), options);
    let registered = [
        evaluator.register_fn_override("now", |args: &[JValue]| {
            if !args.is_empty() {
                return Err(EvaluatorError::EvaluationError(
                    "$now() takes no arguments here; use $fromMillis($millis(), picture, timezone)"
                        .to_owned(),
                ));
            }
            Ok(SCOPE.with(|s| JValue::string(s.borrow().now_iso.as_str())))
        }),
        evaluator.register_fn_override("millis", |_: &[JValue]| {
            Ok(SCOPE.with(|s| JValue::from(s.borrow().now_millis)))
        }),
        evaluator.register_fn("secret", |args: &[JValue]| {
            let name = args.first().and_then(JValue::as_str).unwrap_or_default();
            SCOPE
                .with(|s| {
                    s.borrow()
                        .secrets
                        .get(name)
                        .map(|v| JValue::string(v.as_str()))
                })
                .ok_or_else(|| EvaluatorError::EvaluationError(format!("unknown secret {name:?}")))
        }),
    ];
    for result in registered {
        result.expect("host functions register on a fresh evaluator");
    }
    evaluator
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, data: serde_json::Value) -> Result<serde_json::Value, EvalError> {
        let expr = Expr::parse(src, 4096).map_err(EvalError::Engine)?;
        let scope = CallScope {
            now_iso: "2026-03-08T06:59:00.000Z".into(),
            now_millis: 1_772_953_140_000,
            secrets: Arc::new(HashMap::from([("crm".to_owned(), "s3cret".to_owned())])),
        };
        with_session(&scope, 100, |session| {
            session.eval(&expr, &JValue::from(data))
        })
        .map(|v| to_json(&v))
    }

    #[test]
    fn evaluates_with_the_call_clock_and_secrets() {
        assert_eq!(eval("a + 1", serde_json::json!({"a": 1})).unwrap(), 2);
        assert_eq!(
            eval("$now()", serde_json::json!({})).unwrap(),
            "2026-03-08T06:59:00.000Z"
        );
        assert_eq!(
            eval("$millis()", serde_json::json!({})).unwrap(),
            1_772_953_140_000i64
        );
        assert_eq!(
            eval("$secret('crm')", serde_json::json!({})).unwrap(),
            "s3cret"
        );
        assert!(eval("$secret('nope')", serde_json::json!({})).is_err());
        assert_eq!(
            eval(
                "$fromMillis($millis(), '[H01]:[m01]', '-0500')",
                serde_json::json!({})
            )
            .unwrap(),
            "01:59"
        );
    }

    #[test]
    fn unsafe_and_hostile_expressions_are_refused_at_parse() {
        assert!(Expr::parse("$eval('1+1')", 4096)
            .unwrap_err()
            .contains("$eval"));
        assert!(Expr::parse("($f := $eval; $f('1'))", 4096)
            .unwrap_err()
            .contains("$eval"));
        assert!(Expr::parse("'$eval is fine in a string'", 4096).is_ok());
        assert!(Expr::parse(&"(".repeat(200), 4096)
            .unwrap_err()
            .contains("nested"));
        assert!(Expr::parse(&"1+".repeat(3000), 4096)
            .unwrap_err()
            .contains("longer"));
        assert!(Expr::parse("a +", 4096).is_err());
        assert!(Expr::parse("  ", 4096).is_err());
    }

    #[test]
    fn an_engine_panic_is_an_error_and_the_evaluator_recovers() {
        // Found by fuzzing (workflow_run): jsonata-core 2.2.13 panics on a
        // non-ASCII character in a date picture.
        let result = eval(
            "$fromMillis($millis(), '[\u{fffd}0001]', '-500')",
            serde_json::json!({}),
        );
        assert!(result.is_err(), "{result:?}");
        assert_eq!(eval("1 + 1", serde_json::json!({})).unwrap(), 2);
    }

    #[test]
    fn runaway_evaluation_is_bounded() {
        let recursion = "($f := function($n) { $f($n + 1) }; $f(0))";
        assert!(eval(recursion, serde_json::json!({})).is_err());
        let big = "$count([1..10000000])";
        assert!(eval(big, serde_json::json!({})).is_err());
        // The evaluator still works afterwards.
        assert_eq!(eval("1 = 1", serde_json::json!({})).unwrap(), true);
    }
}
