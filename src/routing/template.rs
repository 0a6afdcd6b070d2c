//! `{{ }}` templates: how the workflow builder embeds JSONata in JSON values.
//!
//! * A string that is exactly one `{{ expr }}` keeps the expression's type.
//! * A string mixing text and `{{ }}` becomes a string (each value rendered
//!   as JSONata's `$string` would: text as is, other values as JSON).
//! * Objects and arrays are templates field by field; other JSON is literal.

use jsonata_core::value::JValue;
use serde_json::Value;

use super::expr::{to_json, EvalError, Expr, Session};

/// A compiled template. Rendering never parses anything.
#[derive(Debug, Clone)]
pub(crate) enum Template {
    Literal(Value),
    Expr(Expr),
    Concat(Vec<Part>),
    Object(Vec<(String, Self)>),
    Array(Vec<Self>),
}

#[derive(Debug, Clone)]
pub(crate) enum Part {
    Text(String),
    Expr(Expr),
}

/// Compiles a JSON value; every bad expression is reported with its path.
pub(crate) fn compile_value(
    value: &Value,
    path: &str,
    max_len: usize,
    errors: &mut Vec<(String, String)>,
) -> Template {
    match value {
        Value::String(s) => compile_str(s, path, max_len, errors),
        Value::Object(map) => Template::Object(
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        compile_value(v, &format!("{path}.{k}"), max_len, errors),
                    )
                })
                .collect(),
        ),
        Value::Array(items) => Template::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| compile_value(v, &format!("{path}[{i}]"), max_len, errors))
                .collect(),
        ),
        other => Template::Literal(other.clone()),
    }
}

/// Compiles a string template.
pub(crate) fn compile_str(
    s: &str,
    path: &str,
    max_len: usize,
    errors: &mut Vec<(String, String)>,
) -> Template {
    let parts = match split(s) {
        Ok(parts) => parts,
        Err(message) => {
            errors.push((path.to_owned(), message));
            return Template::Literal(Value::String(s.to_owned()));
        }
    };
    let mut compiled = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Piece::Text(t) => compiled.push(Part::Text(t.to_owned())),
            Piece::Expr(e) => match Expr::parse(e, max_len) {
                Ok(expr) => compiled.push(Part::Expr(expr)),
                Err(message) => errors.push((path.to_owned(), message)),
            },
        }
    }
    let has_expr = compiled.iter().any(|p| matches!(p, Part::Expr(_)));
    if !has_expr {
        return Template::Literal(Value::String(s.to_owned()));
    }
    // Exactly one expression, with at most whitespace around it: keep its type.
    let mut non_blank = compiled
        .iter()
        .filter(|p| !matches!(p, Part::Text(t) if t.trim().is_empty()));
    if let (Some(Part::Expr(e)), None) = (non_blank.next(), non_blank.next()) {
        return Template::Expr(e.clone());
    }
    Template::Concat(compiled)
}

enum Piece<'a> {
    Text(&'a str),
    Expr(&'a str),
}

/// Splits text around `{{ ... }}`, honouring quotes and braces inside the
/// expression (so `{{ {'a': {'b': 1}} }}` is one expression).
fn split(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let body = &rest[open + 2..];
        let end = closing(body).ok_or_else(|| "unterminated `{{`: missing `}}`".to_owned())?;
        pieces.push(Piece::Expr(&body[..end]));
        rest = &body[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Byte offset of the `}}` closing an expression body.
fn closing(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let (mut depth, mut quote, mut i) = (0usize, None::<u8>, 0);
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'{' => depth += 1,
                b'}' if depth == 0 && bytes.get(i + 1) == Some(&b'}') => return Some(i),
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        i += 1;
    }
    None
}

impl Template {
    /// Renders against the run context. `None` means "undefined" (an
    /// expression that produced nothing), which callers treat as absent.
    pub(crate) fn render(
        &self,
        session: &mut Session<'_>,
        data: &JValue,
    ) -> Result<Option<Value>, EvalError> {
        Ok(match self {
            Self::Literal(v) => Some(v.clone()),
            Self::Expr(e) => defined(session.eval(e, data)?).map(|v| to_json(&v)),
            Self::Concat(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => {
                            if let Some(v) = defined(session.eval(e, data)?) {
                                append_string(&mut out, &v);
                            }
                        }
                    }
                }
                Some(Value::String(out))
            }
            Self::Object(fields) => {
                let mut map = serde_json::Map::with_capacity(fields.len());
                for (k, t) in fields {
                    if let Some(v) = t.render(session, data)? {
                        map.insert(k.clone(), v);
                    }
                }
                Some(Value::Object(map))
            }
            Self::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for t in items {
                    out.push(t.render(session, data)?.unwrap_or(Value::Null));
                }
                Some(Value::Array(out))
            }
        })
    }

    /// Renders for a truth test (condition `when`), with JSONata's boolean cast.
    pub(crate) fn truthy(
        &self,
        session: &mut Session<'_>,
        data: &JValue,
    ) -> Result<bool, EvalError> {
        Ok(match self {
            Self::Expr(e) => is_truthy(&session.eval(e, data)?),
            other => other
                .render(session, data)?
                .is_some_and(|v| is_truthy(&JValue::from(v))),
        })
    }
}

fn defined(v: JValue) -> Option<JValue> {
    (!v.is_undefined()).then_some(v)
}

fn append_string(out: &mut String, v: &JValue) {
    match v {
        JValue::String(s) => out.push_str(s),
        other => out.push_str(&to_json(other).to_string()),
    }
}

/// JSONata's `$boolean` cast.
pub(crate) fn is_truthy(v: &JValue) -> bool {
    match v {
        JValue::Bool(b) => *b,
        JValue::Number(n) => *n != 0.0,
        JValue::String(s) => !s.is_empty(),
        JValue::Array(items) => items.iter().any(is_truthy),
        JValue::Object(map) => !map.is_empty(),
        JValue::Null | JValue::Undefined => false,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::super::expr::{with_session, CallScope};
    use super::*;

    fn render(template: Value, data: Value) -> Option<Value> {
        let mut errors = Vec::new();
        let t = compile_value(&template, "$", 4096, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let scope = CallScope {
            now_iso: String::new(),
            now_millis: 0,
            secrets: Arc::new(HashMap::new()),
        };
        with_session(&scope, 100, |s| t.render(s, &JValue::from(data))).unwrap()
    }

    #[test]
    fn exact_expressions_keep_their_type_and_mixed_text_is_a_string() {
        let data = json!({"n": 3, "name": "Ann", "obj": {"a": 1}});
        assert_eq!(render(json!("{{ n }}"), data.clone()), Some(json!(3)));
        assert_eq!(
            render(json!("  {{ n * 2 }} "), data.clone()),
            Some(json!(6))
        );
        assert_eq!(
            render(json!("n={{ n }}, {{ name }}!"), data.clone()),
            Some(json!("n=3, Ann!"))
        );
        assert_eq!(
            render(json!("{{ obj }}"), data.clone()),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            render(json!("x{{ obj }}"), data.clone()),
            Some(json!("x{\"a\":1}"))
        );
        assert_eq!(
            render(json!("{{ {'a': {'b': n}} }}"), data.clone()),
            Some(json!({"a": {"b": 3}}))
        );
        assert_eq!(
            render(json!("{{ '}}' & name }}"), data.clone()),
            Some(json!("}}Ann"))
        );
        assert_eq!(
            render(json!({"k": ["{{ name }}", 1, true]}), data.clone()),
            Some(json!({"k": ["Ann", 1, true]}))
        );
        assert_eq!(render(json!("{{ missing }}"), data.clone()), None);
        assert_eq!(
            render(json!({"k": "{{ missing }}"}), data.clone()),
            Some(json!({}))
        );
        assert_eq!(render(json!("plain"), data), Some(json!("plain")));
    }

    #[test]
    fn bad_templates_report_their_path() {
        let mut errors = Vec::new();
        compile_value(
            &json!({"a": "{{ 1 + }}", "b": ["ok", "{{ x"]}),
            "$.f",
            4096,
            &mut errors,
        );
        let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["$.f.a", "$.f.b[1]"]);
    }
}
