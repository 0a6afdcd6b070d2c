//! Storage: every SQL statement of the daemon, on SQLite or PostgreSQL.
//!
//! [`Store`] is the only way the rest of the daemon touches the database. Its
//! methods take the caller's organization id wherever tenant data is involved,
//! so isolation is enforced here and not only in handlers.
//!
//! Both backends run the same statements: `queries/*.rs` is compiled once per
//! backend (see `docs/decisions/0002-one-sql-text-two-backends.md`), and each
//! backend has its own migration folder because DDL types differ.
//!
//! Allowed imports: `sqlx`, `chrono`, `serde_json`, `crate::token`, `crate::config`.
//! Must not import `admin`, `sip`, `call` or `routing`.

mod error;
pub mod types;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use error::StoreError;
use types::*;

use crate::config::{Backend, DatabaseConfig};

/// Includes every query file into a backend module.
macro_rules! queries {
    () => {
        include!("queries/prelude.rs");
        include!("queries/tenancy.rs");
        include!("queries/catalog.rs");
        include!("queries/routing_config.rs");
        include!("queries/decisions.rs");
    };
}

mod sqlite {
    type Db = sqlx::Sqlite;
    queries!();
}

mod postgres {
    type Db = sqlx::Postgres;
    queries!();
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The daemon's database handle. Cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query function on whichever backend is configured.
macro_rules! on_backend {
    ($self:ident . $f:ident ( $($arg:expr),* $(,)? )) => {
        match &$self.pool {
            Pool::Sqlite(pool) => sqlite::$f(pool, $($arg),*).await,
            Pool::Postgres(pool) => postgres::$f(pool, $($arg),*).await,
        }
    };
}

impl Store {
    /// Opens the pool named by `config.url`. A SQLite file and its directory
    /// are created if missing and put in WAL mode. Fails fast (within
    /// `acquire_timeout_ms`) if the database cannot be reached.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database cannot be opened or reached.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, StoreError> {
        let acquire = Duration::from_millis(config.acquire_timeout_ms);
        let pool = match config.backend() {
            Some(Backend::Postgres) => {
                let options = PgConnectOptions::from_str(&config.url)?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(config.max_connections)
                        .acquire_timeout(acquire)
                        .connect_with(options)
                        .await?,
                )
            }
            _ => {
                let options = SqliteConnectOptions::from_str(&config.url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL is durable across process crashes in WAL mode;
                    // only an OS crash can lose the last transactions.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(acquire)
                    // Statement journals (multi-row inserts) in memory, not
                    // in temporary files written on every batch.
                    .pragma("temp_store", "MEMORY")
                    .foreign_keys(true);
                if let Some(dir) = options.get_filename().parent() {
                    create_dir(dir)?;
                }
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(config.max_connections)
                        .acquire_timeout(acquire)
                        .connect_with(options)
                        .await?,
                )
            }
        };
        Ok(Self { pool })
    }

    /// Applies the embedded migrations of this backend.
    ///
    /// # Errors
    /// [`StoreError::Migrate`] when a migration fails or the database has
    /// migrations this binary does not know.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Answers whether the database responds to a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes every connection; pending queries finish first.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    // --- organizations, users, tokens (operator CLI and auth) ---

    pub async fn create_org(&self, id: &str, name: &str) -> Result<Organization, StoreError> {
        let org = Organization {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: now(),
        };
        on_backend!(self.insert_org(&org))?;
        Ok(org)
    }

    pub async fn org(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        on_backend!(self.get_org(id))
    }

    pub async fn orgs(&self) -> Result<Vec<Organization>, StoreError> {
        on_backend!(self.list_orgs())
    }

    pub async fn create_user(&self, id: &str, name: &str) -> Result<User, StoreError> {
        let user = User {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: now(),
        };
        on_backend!(self.insert_user(&user))?;
        Ok(user)
    }

    pub async fn add_membership(&self, user_id: &str, org_id: &str) -> Result<(), StoreError> {
        on_backend!(self.add_membership(user_id, org_id))
    }

    pub async fn is_member(&self, user_id: &str, org_id: &str) -> Result<bool, StoreError> {
        on_backend!(self.is_member(user_id, org_id))
    }

    pub async fn create_token(&self, token: &NewToken) -> Result<ApiToken, StoreError> {
        on_backend!(self.insert_token(token))
    }

    /// Looks a token up by its public id (not organization-scoped: this is how
    /// a request's organization is found).
    pub async fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        on_backend!(self.find_token(id))
    }

    pub async fn org_tokens(&self, org_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        on_backend!(self.list_org_tokens(org_id))
    }

    /// Revokes a token; `false` if it does not exist or was already revoked.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        on_backend!(self.revoke_token(id))
    }

    /// Revokes every live key of `org_id` called `name`; returns how many.
    pub async fn revoke_org_tokens_named(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<u64, StoreError> {
        on_backend!(self.revoke_org_tokens_named(org_id, name))
    }

    pub async fn touch_token(&self, id: &str) -> Result<(), StoreError> {
        on_backend!(self.touch_token(id, now()))
    }

    // --- agents ---

    pub async fn agents(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Agent>, StoreError> {
        on_backend!(self.list_agents(org_id, page))
    }

    pub async fn agent(&self, org_id: &str, id: &str) -> Result<Option<Agent>, StoreError> {
        on_backend!(self.get_agent(org_id, id))
    }

    pub async fn create_agent(
        &self,
        org_id: &str,
        id: &str,
        fields: &AgentFields,
    ) -> Result<Agent, StoreError> {
        on_backend!(self.insert_agent(org_id, id, fields))
    }

    pub async fn update_agent(
        &self,
        org_id: &str,
        id: &str,
        fields: &AgentFields,
    ) -> Result<Option<Agent>, StoreError> {
        on_backend!(self.update_agent(org_id, id, fields))
    }

    pub async fn delete_agent(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        on_backend!(self.delete_agent(org_id, id))
    }

    pub async fn agent_versions(
        &self,
        org_id: &str,
        agent_id: &str,
    ) -> Result<Vec<AgentVersion>, StoreError> {
        on_backend!(self.list_agent_versions(org_id, agent_id))
    }

    pub async fn agent_version(
        &self,
        org_id: &str,
        agent_id: &str,
        version: i64,
    ) -> Result<Option<AgentVersion>, StoreError> {
        on_backend!(self.get_agent_version(org_id, agent_id, version))
    }

    /// Creates the next draft version (1, 2, ...) of an existing agent.
    pub async fn create_agent_version(
        &self,
        org_id: &str,
        agent_id: &str,
    ) -> Result<AgentVersion, StoreError> {
        on_backend!(self.insert_next_agent_version(org_id, agent_id))
    }

    /// Publishes a version and assigns the given E.164 numbers to the agent
    /// for inbound calls (latest published version), all or nothing.
    pub async fn publish_agent_version(
        &self,
        org_id: &str,
        agent_id: &str,
        version: i64,
        phone_numbers: &[String],
    ) -> Result<AgentVersion, StoreError> {
        on_backend!(self.publish_agent_version(org_id, agent_id, version, phone_numbers))
    }

    // --- trunks ---

    pub async fn trunks(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Trunk>, StoreError> {
        on_backend!(self.list_trunks(org_id, page))
    }

    pub async fn trunk(&self, org_id: &str, id: &str) -> Result<Option<Trunk>, StoreError> {
        on_backend!(self.get_trunk(org_id, id))
    }

    pub async fn create_trunk(
        &self,
        org_id: &str,
        fields: &TrunkFields,
    ) -> Result<Trunk, StoreError> {
        let id = new_id("trk");
        on_backend!(self.insert_trunk(org_id, &id, fields))
    }

    pub async fn update_trunk(
        &self,
        org_id: &str,
        id: &str,
        fields: &TrunkFields,
    ) -> Result<Option<Trunk>, StoreError> {
        on_backend!(self.update_trunk(org_id, id, fields))
    }

    pub async fn delete_trunk(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        on_backend!(self.delete_trunk(org_id, id))
    }

    // --- phone numbers ---

    pub async fn phone_numbers(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<PhoneNumber>, StoreError> {
        on_backend!(self.list_numbers(org_id, page))
    }

    pub async fn phone_number(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<PhoneNumber>, StoreError> {
        on_backend!(self.get_number(org_id, id))
    }

    pub async fn create_phone_number(
        &self,
        org_id: &str,
        fields: &PhoneNumberFields,
    ) -> Result<PhoneNumber, StoreError> {
        let id = new_id("num");
        on_backend!(self.insert_number(org_id, &id, fields))
    }

    pub async fn update_phone_number(
        &self,
        org_id: &str,
        id: &str,
        fields: &PhoneNumberFields,
    ) -> Result<Option<PhoneNumber>, StoreError> {
        on_backend!(self.update_number(org_id, id, fields))
    }

    pub async fn delete_phone_number(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        on_backend!(self.delete_number(org_id, id))
    }

    // --- workflow secrets ---

    /// Creates or replaces a secret.
    pub async fn put_secret(
        &self,
        org_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self.put_secret(org_id, name, value))
    }

    pub async fn delete_secret(&self, org_id: &str, name: &str) -> Result<bool, StoreError> {
        on_backend!(self.delete_secret(org_id, name))
    }

    /// Secret names and when each was last set (never the values).
    pub async fn secret_names(
        &self,
        org_id: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        on_backend!(self.list_secret_names(org_id))
    }

    /// Every secret of the organization, for its routing snapshot.
    pub async fn secrets(&self, org_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self.org_secrets(org_id))
    }

    // --- whole-organization reads for the routing snapshot ---

    pub async fn all_agents(&self, org_id: &str) -> Result<Vec<Agent>, StoreError> {
        on_backend!(self.all_agents(org_id))
    }

    /// `(agent_id, version)` of every published version.
    pub async fn published_versions(&self, org_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        on_backend!(self.published_versions(org_id))
    }

    pub async fn all_trunks(&self, org_id: &str) -> Result<Vec<Trunk>, StoreError> {
        on_backend!(self.all_trunks(org_id))
    }

    pub async fn all_phone_numbers(&self, org_id: &str) -> Result<Vec<PhoneNumber>, StoreError> {
        on_backend!(self.all_numbers(org_id))
    }

    // --- change propagation (scale-out) ---

    /// Records that `org_id`'s routing data changed: bumps its change counter
    /// and, on PostgreSQL, notifies every instance (`LISTEN inroute_changes`).
    pub async fn announce_change(&self, org_id: &str) -> Result<(), StoreError> {
        on_backend!(self.bump_change(org_id))?;
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(org_id)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Every organization's change counter.
    pub async fn change_counters(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_backend!(self.change_counters())
    }

    /// A listener for change notifications (PostgreSQL only; `None` on SQLite,
    /// where one process owns the database).
    pub async fn listen_changes(&self) -> Result<Option<ChangeListener>, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Some(ChangeListener(listener)))
    }

    // --- decision log ---

    /// Writes a batch of decisions (idempotent per id).
    pub async fn insert_decisions(
        &self,
        batch: &[std::sync::Arc<DecisionRecord>],
    ) -> Result<(), StoreError> {
        on_backend!(self.insert_decisions(batch))
    }

    /// Decisions of `org_id` matching `filter`, newest first, ids below `before`.
    pub async fn decisions(
        &self,
        org_id: &str,
        filter: &DecisionFilter,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        on_backend!(self.list_decisions(org_id, filter, limit, before))
    }

    pub async fn decision(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<DecisionRecord>, StoreError> {
        on_backend!(self.get_decision(org_id, id))
    }

    /// Deletes decisions older than `cutoff` (retention).
    pub async fn purge_decisions(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        on_backend!(self.purge_decisions(cutoff))
    }

    // --- inbound routing config ---

    pub async fn routing_config(&self, org_id: &str) -> Result<Option<RoutingConfig>, StoreError> {
        on_backend!(self.get_config(org_id))
    }

    /// Creates the organization's config (`Conflict` if one exists) and records
    /// the revision as `change` (`Create`, or `Restore`).
    pub async fn create_routing_config(
        &self,
        org_id: &str,
        fields: &RoutingConfigFields,
        change: ChangeKind,
        changed_by: &str,
    ) -> Result<RoutingConfig, StoreError> {
        let id = new_id("irc");
        on_backend!(self.create_config(org_id, &id, fields, change, changed_by))
    }

    /// Replaces the config's fields if it is still at `base_revision`
    /// ([`StoreError::Stale`] otherwise) and records the revision.
    pub async fn update_routing_config(
        &self,
        org_id: &str,
        base_revision: i64,
        fields: &RoutingConfigFields,
        change: ChangeKind,
        changed_by: &str,
    ) -> Result<RoutingConfig, StoreError> {
        on_backend!(self.update_config(org_id, base_revision, fields, change, changed_by))
    }

    /// Deletes the config if it is still at `base_revision` ([`StoreError::Stale`]
    /// otherwise) and records the revision.
    pub async fn delete_routing_config(
        &self,
        org_id: &str,
        base_revision: i64,
        changed_by: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self.delete_config(org_id, base_revision, changed_by))
    }

    /// Revisions, newest first, below `before` if given.
    pub async fn routing_config_revisions(
        &self,
        org_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<ConfigRevision>, StoreError> {
        on_backend!(self.list_revisions(org_id, limit, before))
    }

    pub async fn routing_config_revision(
        &self,
        org_id: &str,
        revision: i64,
    ) -> Result<Option<ConfigRevision>, StoreError> {
        on_backend!(self.get_revision(org_id, revision))
    }
}

/// The `LISTEN`/`NOTIFY` channel of routing changes.
const CHANGES_CHANNEL: &str = "inroute_changes";

/// Change notifications from PostgreSQL.
pub struct ChangeListener(sqlx::postgres::PgListener);

/// One event from a [`ChangeListener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This organization changed.
    Org(String),
    /// The connection was lost and re-established: notifications may have
    /// been missed, so everything should be compared.
    Resync,
}

impl ChangeListener {
    /// Waits for the next change. Reconnects by itself after a database
    /// restart (reporting [`Change::Resync`]).
    ///
    /// # Errors
    /// The database cannot be reached; call again to retry.
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        match self.0.try_recv().await? {
            Some(n) => Ok(Change::Org(n.payload().to_owned())),
            None => Ok(Change::Resync),
        }
    }
}

/// The current time at the precision both backends store (microseconds).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A new random id such as `trk_k3j2...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", crate::token::random_alnum(20))
}

fn encode_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("in-memory JSON values always serialize")
}

fn decode_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn create_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))
}
