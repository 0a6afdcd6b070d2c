//! Shared test harness: real databases and a real daemon on port 0.
//!
//! SQLite tests use a temporary file. PostgreSQL tests need `TEST_POSTGRES_URL`
//! (set by `scripts/test`, which starts a throwaway cluster); each test gets a
//! fresh database. A configured but unreachable server fails the test. Without
//! the variable the PostgreSQL half is skipped with a message, unless
//! `INROUTE_REQUIRE_POSTGRES=1`, which makes that a failure too.

#![allow(dead_code, unreachable_pub)]

pub mod sip;
pub mod sipp;

use std::net::SocketAddr;

use inroute::app::{self, Daemon};
use inroute::config::Config;
use inroute::shutdown::ShutdownKind;
use inroute::store::types::NewToken;
use inroute::store::{new_id, Store};
use inroute::token::{self, Scope, TokenKind};
use sqlx::Connection;
use tempfile::TempDir;

/// A database for one test; the temporary directory lives as long as it.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL is not configured (skip).
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/inroute.db", dir.path().display());
                Some(Self {
                    url,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => Self::postgres().await,
        }
    }

    async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
            if std::env::var("INROUTE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("INROUTE_REQUIRE_POSTGRES=1 but TEST_POSTGRES_URL is not set");
            }
            eprintln!("SKIPPED: PostgreSQL half of this test (set TEST_POSTGRES_URL, or run scripts/test)");
            return None;
        };
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("TEST_POSTGRES_URL is set but unreachable ({admin_url}): {e}")
            });
        let name = format!("inroute_t_{}", token::random_alnum(12));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        Some(Self {
            url: format!("{base}/{name}"),
            _dir: None,
        })
    }

    /// Another handle on the same database (no temporary files of its own).
    pub fn shared(&self) -> Self {
        Self {
            url: self.url.clone(),
            _dir: None,
        }
    }

    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.database.url = self.url.clone();
        config.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.sip.udp = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        config.sip.tcp = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        config.shutdown.grace_ms = 2_000;
        config
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        app::open_store(&self.config()).await.expect("open store")
    }
}

/// A daemon running in this process, with a store handle for test set-up.
pub struct TestDaemon {
    pub daemon: Option<Daemon>,
    pub store: Store,
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
}

impl TestDaemon {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        Some(Self::start_on(db, tweak).await)
    }

    /// A daemon on an existing database (e.g. a second instance).
    pub async fn start_on(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = db.config();
        tweak(&mut config);
        let daemon = app::start(config, false).await.expect("daemon starts");
        let base = format!("http://{}", daemon.admin_addr);
        Self {
            store: db.store().await,
            daemon: Some(daemon),
            base,
            http: reqwest::Client::new(),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new organization; returns its id.
    pub async fn org(&self, name: &str) -> String {
        self.store
            .create_org(&new_id("org"), name)
            .await
            .expect("org")
            .id
    }

    /// An organization key with `scopes`.
    pub async fn org_key(&self, org: &str, scopes: &[Scope]) -> String {
        self.mint(TokenKind::OrgKey, Some(org), None, scopes).await
    }

    /// A key with every scope.
    pub async fn admin_key(&self, org: &str) -> String {
        self.org_key(org, &Scope::ALL).await
    }

    /// A user holding a PAT with `scopes`; returns (user id, token).
    pub async fn user_pat(&self, scopes: &[Scope]) -> (String, String) {
        let user = self
            .store
            .create_user(&new_id("usr"), "Test User")
            .await
            .expect("user")
            .id;
        let pat = self.mint(TokenKind::Pat, None, Some(&user), scopes).await;
        (user, pat)
    }

    async fn mint(
        &self,
        kind: TokenKind,
        org: Option<&str>,
        user: Option<&str>,
        scopes: &[Scope],
    ) -> String {
        let minted = token::mint(kind);
        self.store
            .create_token(&NewToken {
                id: minted.id,
                kind,
                organization_id: org.map(str::to_owned),
                user_id: user.map(str::to_owned),
                name: "test".to_owned(),
                scopes: scopes.to_vec(),
                secret_hash: minted.secret_hash,
            })
            .await
            .expect("token");
        minted.bearer
    }

    /// The daemon's first SIP UDP and TCP addresses.
    pub fn sip_udp(&self) -> SocketAddr {
        self.daemon.as_ref().unwrap().sip_udp[0]
    }

    pub fn sip_tcp(&self) -> SocketAddr {
        self.daemon.as_ref().unwrap().sip_tcp[0]
    }

    /// An organization wired for calls: agents `agent_a` (v1, v2 published,
    /// v3 draft) and `agent_fb` (v1), a trunk for 127.0.0.0/8 (country code
    /// 1), the given numbers (assigned to `agent_a` when `assigned`), and
    /// the routing config `config` (JSON body of POST, if any).
    pub async fn call_org(
        &self,
        numbers: &[&str],
        assigned: bool,
        config: Option<serde_json::Value>,
    ) -> String {
        self.call_org_on("127.0.0.0/8", numbers, assigned, config)
            .await
    }

    /// [`Self::call_org`] with a trunk for `network` only.
    pub async fn call_org_on(
        &self,
        network: &str,
        numbers: &[&str],
        assigned: bool,
        config: Option<serde_json::Value>,
    ) -> String {
        use serde_json::json;
        let org = self.org("Calls").await;
        let key = self.admin_key(&org).await;
        for (agent, publish) in [("agent_a", vec![1, 2]), ("agent_fb", vec![1])] {
            self.req("POST", "/core/agents")
                .token(&key)
                .json(json!({"id": agent, "name": agent}))
                .send()
                .await;
            for v in 1..=3 {
                self.req("POST", &format!("/core/agents/{agent}/versions"))
                    .token(&key)
                    .send()
                    .await;
                if publish.contains(&v) {
                    self.req(
                        "POST",
                        &format!("/core/agents/{agent}/versions/{v}/publish"),
                    )
                    .token(&key)
                    .send()
                    .await;
                }
            }
        }
        let trunk = self
            .req("POST", "/core/trunks")
            .token(&key)
            .json(json!({"name": "loopback", "inbound_addresses": [network], "default_country_code": "1",
                         "trust_asserted_identity": true}))
            .send()
            .await
            .body["id"]
            .clone();
        for number in numbers {
            let agent = if assigned {
                json!("agent_a")
            } else {
                serde_json::Value::Null
            };
            let r = self
                .req("POST", "/core/phone-numbers")
                .token(&key)
                .json(json!({"phone_number": number, "trunk_id": trunk, "inbound_agent_id": agent}))
                .send()
                .await;
            assert_eq!(r.status, 201, "{r:?}");
        }
        if let Some(body) = config {
            let r = self
                .req("POST", "/core/inbound-routing-config")
                .token(&key)
                .json(body)
                .send()
                .await;
            assert_eq!(r.status, 201, "{r:?}");
        }
        key
    }

    pub async fn stop(mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.stop(ShutdownKind::Drain).await;
        }
    }
}

/// Runs each listed async test function on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// One HTTP exchange's result.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The `detail` of an error body (empty if none).
    pub fn detail(&self) -> &str {
        self.body
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or("")
    }

    /// The JSON paths named by a 422's `errors`.
    pub fn error_paths(&self) -> Vec<String> {
        self.body
            .get("errors")
            .and_then(|e| e.as_array())
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.get("path").and_then(|p| p.as_str()).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn etag(&self) -> Option<String> {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// Builder-free request helper: method, path, bearer token, optional JSON body.
pub struct Req<'a> {
    pub daemon: &'a TestDaemon,
    pub method: reqwest::Method,
    pub path: String,
    pub token: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl TestDaemon {
    pub fn req(&self, method: &str, path: &str) -> Req<'_> {
        Req {
            daemon: self,
            method: method.parse().expect("method"),
            path: path.to_owned(),
            token: None,
            headers: Vec::new(),
            body: None,
        }
    }
}

impl Req<'_> {
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(serde_json::to_vec(&body).expect("json"));
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self
    }

    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub async fn send(self) -> Reply {
        let mut request = self
            .daemon
            .http
            .request(self.method, self.daemon.url(&self.path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = self.body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request reaches the daemon");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            body,
            headers,
        }
    }
}
