//! The layered loader: defaults < file < environment < overrides.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Map, Value, ValueKind};

use super::Config;

/// Keys whose values are lists; in the environment and `--set` they are comma-separated.
const LIST_KEYS: [&str; 4] = ["sip.udp", "sip.tcp", "sip.tls", "sip.scanner_user_agents"];

/// The file loaded when `--config` is not given, if it exists.
pub(crate) const DEFAULT_FILE: &str = "config/inroute.toml";

/// Everything the loader reads. The caller gathers it (the process environment
/// in `main`, a literal map in tests).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--config FILE`: must exist. Without it, [`DEFAULT_FILE`] is read if present.
    pub file: Option<PathBuf>,
    /// Environment variables; only `INROUTE__*` are used.
    pub env: Vec<(String, String)>,
    /// `section.key = value` overrides from CLI flags, applied last.
    pub overrides: Vec<(String, String)>,
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

/// Loads and validates the configuration; binds nothing.
///
/// # Errors
/// A [`ConfigError`] listing every unreadable source, unknown key, wrong type
/// and out-of-range value.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let merged = merge(sources)?;
    let root: Map<String, Value> = merged
        .clone()
        .try_deserialize()
        .map_err(|e| ConfigError::one(e.to_string()))?;

    let known = serde_json::to_value(Config::default()).expect("defaults serialize");
    let mut problems = Vec::new();
    unknown_keys(&root, &known, "", &mut problems);

    key_problems::<super::AdminConfig>(&root, "admin", &known, &mut problems);
    key_problems::<super::DatabaseConfig>(&root, "database", &known, &mut problems);
    key_problems::<super::DecisionsConfig>(&root, "decisions", &known, &mut problems);
    key_problems::<super::LogConfig>(&root, "log", &known, &mut problems);
    key_problems::<super::PropagationConfig>(&root, "propagation", &known, &mut problems);
    key_problems::<super::RoutingConfig>(&root, "routing", &known, &mut problems);
    key_problems::<super::RedirectConfig>(&root, "redirect", &known, &mut problems);
    key_problems::<super::SipConfig>(&root, "sip", &known, &mut problems);
    key_problems::<super::ShutdownConfig>(&root, "shutdown", &known, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let config: Config = merged
        .try_deserialize()
        .map_err(|e| ConfigError::one(e.to_string()))?;
    let problems = config.problems();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

fn merge(sources: &Sources) -> Result<config::Config, ConfigError> {
    let mut builder = config::Config::builder();
    match &sources.file {
        Some(path) => builder = builder.add_source(toml_file(path).required(true)),
        None if Path::new(DEFAULT_FILE).exists() => {
            builder = builder.add_source(toml_file(Path::new(DEFAULT_FILE)));
        }
        None => {}
    }
    let env = sources
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("INROUTE__"))
        .cloned()
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("INROUTE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("sip.udp")
            .with_list_parse_key("sip.tcp")
            .with_list_parse_key("sip.tls")
            .with_list_parse_key("sip.scanner_user_agents")
            .source(Some(env)),
    );
    for (key, value) in &sources.overrides {
        let set = if LIST_KEYS.contains(&key.as_str()) {
            let items: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            builder.set_override(key.as_str(), items)
        } else {
            builder.set_override(key.as_str(), value.as_str())
        };
        builder = set.map_err(|e| ConfigError::one(format!("{key}: {e}")))?;
    }
    builder.build().map_err(|e| ConfigError::one(e.to_string()))
}

fn toml_file(path: &Path) -> File<config::FileSourceFile, FileFormat> {
    File::from(path).format(FileFormat::Toml)
}

/// Reports every key of `value` that the defaults tree `known` does not have.
fn unknown_keys(
    value: &Map<String, Value>,
    known: &serde_json::Value,
    prefix: &str,
    problems: &mut Vec<String>,
) {
    let keys: BTreeSet<&String> = value.keys().collect();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(key.as_str()) {
            None => problems.push(format!("{path}: unknown key")),
            Some(sub @ serde_json::Value::Object(_)) => {
                if let ValueKind::Table(table) = &value[key].kind {
                    unknown_keys(table, sub, &path, problems);
                }
            }
            Some(_) => {}
        }
    }
}

/// Type-checks each known key of `section` on its own, so that every bad
/// value is reported (serde stops at the first error of a struct).
fn key_problems<T: serde::de::DeserializeOwned>(
    root: &Map<String, Value>,
    section: &str,
    known: &serde_json::Value,
    problems: &mut Vec<String>,
) {
    let Some(value) = root.get(section) else {
        return;
    };
    let ValueKind::Table(table) = &value.kind else {
        problems.push(format!("{section}: must be a table of keys"));
        return;
    };
    for (key, value) in table {
        if known.get(section).and_then(|s| s.get(key)).is_none() {
            continue; // already reported as unknown
        }
        let path = format!("{section}.{key}");
        let checked = config::Config::builder()
            .set_override(path.as_str(), value.clone())
            .and_then(|b| b.build())
            .and_then(|c| c.get::<T>(section));
        if let Err(e) = checked {
            problems.push(format!("{path}: {}", strip_key_suffix(&e.to_string())));
        }
    }
}

/// config-rs appends " for key `section`"; the exact key is already named.
fn strip_key_suffix(message: &str) -> &str {
    message
        .find(" for key `")
        .map_or(message, |at| &message[..at])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogFormat;

    /// An empty configuration file, so only the environment given counts.
    fn empty_file() -> PathBuf {
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.into_temp_path().keep().unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Sources {
        Sources {
            file: Some(empty_file()),
            env: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            overrides: vec![],
        }
    }

    #[test]
    fn defaults_load_without_any_source() {
        let config = load(&env(&[])).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn environment_overrides_defaults_and_flags_override_environment() {
        let mut sources = env(&[
            ("INROUTE__ADMIN__LISTEN", "127.0.0.1:9999"),
            ("INROUTE__LOG__FORMAT", "json"),
            ("INROUTE__ADMIN__BODY_LIMIT_BYTES", "2048"),
            ("UNRELATED", "x"),
        ]);
        sources
            .overrides
            .push(("admin.listen".into(), "127.0.0.1:7777".into()));
        let config = load(&sources).unwrap();
        assert_eq!(config.admin.listen.port(), 7777);
        assert_eq!(config.admin.body_limit_bytes, 2048);
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn every_problem_is_reported_together() {
        let err = load(&env(&[
            ("INROUTE__ADMIN__LISTN", "x"),
            ("INROUTE__NOPE__KEY", "1"),
            ("INROUTE__DATABASE__MAX_CONNECTIONS", "many"),
            ("INROUTE__LOG__FORMAT", "xml"),
        ]))
        .unwrap_err();
        let all = err.problems.join("\n");
        assert!(all.contains("admin.listn: unknown key"), "{all}");
        assert!(all.contains("nope: unknown key"), "{all}");
        assert!(all.contains("database"), "{all}");
        assert!(all.contains("log"), "{all}");
        assert_eq!(err.problems.len(), 4, "{all}");
    }

    #[test]
    fn range_checks_are_collected() {
        let err = load(&env(&[
            ("INROUTE__DATABASE__URL", "mysql://x"),
            ("INROUTE__ADMIN__BODY_LIMIT_BYTES", "10"),
        ]))
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{:?}", err.problems);
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let sources = Sources {
            file: Some(PathBuf::from("/nonexistent/inroute.toml")),
            ..Sources::default()
        };
        assert!(load(&sources).is_err());
    }

    #[test]
    fn the_shipped_file_is_valid_and_matches_the_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_FILE);
        let sources = Sources {
            file: Some(path),
            ..Sources::default()
        };
        assert_eq!(load(&sources).unwrap(), Config::default());
    }
}
