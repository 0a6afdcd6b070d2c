// Every SQL statement of the daemon, written once and compiled for each backend.
//
// This file is `include!`d by `store::sqlite` and `store::postgres`, each of
// which defines `type Db` first. Both backends accept `$N` placeholders and the
// same column types through sqlx (TEXT, BIGINT/INTEGER, BOOLEAN, timestamps), so
// one text serves both; where the dialects differ the SQL must stay in the
// common subset. Every query on tenant data takes the organization id.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, Pool};

use super::error::StoreError;
use super::types::*;
use super::{decode_json, encode_json, now};
use crate::token::{Scope, TokenKind};

// === organizations and users ===

pub(super) async fn insert_org(pool: &Pool<Db>, org: &Organization) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.created_at)
        .execute(pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "organization id already exists"))?;
    Ok(())
}

pub(super) async fn get_org(pool: &Pool<Db>, id: &str) -> Result<Option<Organization>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

pub(super) async fn list_orgs(pool: &Pool<Db>) -> Result<Vec<Organization>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, name, created_at FROM organizations ORDER BY id")
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn insert_user(pool: &Pool<Db>, user: &User) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&user.id)
        .bind(&user.name)
        .bind(user.created_at)
        .execute(pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "user id already exists"))?;
    Ok(())
}

pub(super) async fn add_membership(pool: &Pool<Db>, user_id: &str, org_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memberships (user_id, organization_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, organization_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(org_id)
    .bind(now())
    .execute(pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "unknown user or organization"))?;
    Ok(())
}

pub(super) async fn is_member(pool: &Pool<Db>, user_id: &str, org_id: &str) -> Result<bool, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT user_id FROM memberships WHERE user_id = $1 AND organization_id = $2",
    )
    .bind(user_id)
    .bind(org_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

// === API tokens ===

#[derive(FromRow)]
struct TokenRow {
    id: String,
    kind: String,
    organization_id: Option<String>,
    user_id: Option<String>,
    name: String,
    scopes: String,
    secret_hash: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        let kind = TokenKind::from_db(&row.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("token kind {:?}", row.kind)))?;
        let names: Vec<String> = decode_json(&row.scopes)?;
        // A scope this version does not know is ignored rather than fatal.
        let scopes = names.iter().filter_map(|s| s.parse::<Scope>().ok()).collect();
        Ok(Self {
            id: row.id,
            kind,
            organization_id: row.organization_id,
            user_id: row.user_id,
            name: row.name,
            scopes,
            secret_hash: row.secret_hash,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        })
    }
}

const TOKEN_COLUMNS: &str = "id, kind, organization_id, user_id, name, scopes, secret_hash, \
                             created_at, revoked_at, last_used_at";

pub(super) async fn insert_token(pool: &Pool<Db>, token: &NewToken) -> Result<ApiToken, StoreError> {
    let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
    let row: TokenRow = sqlx::query_as(&format!(
        "INSERT INTO api_tokens (id, kind, organization_id, user_id, name, scopes, secret_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(&token.id)
    .bind(token.kind.as_str())
    .bind(&token.organization_id)
    .bind(&token.user_id)
    .bind(&token.name)
    .bind(encode_json(&scopes))
    .bind(&token.secret_hash)
    .bind(now())
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "unknown organization or user, or duplicate token id"))?;
    row.try_into()
}

pub(super) async fn find_token(pool: &Pool<Db>, id: &str) -> Result<Option<ApiToken>, StoreError> {
    let row: Option<TokenRow> =
        sqlx::query_as(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    row.map(TryInto::try_into).transpose()
}

pub(super) async fn list_org_tokens(pool: &Pool<Db>, org_id: &str) -> Result<Vec<ApiToken>, StoreError> {
    let rows: Vec<TokenRow> = sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE organization_id = $1 ORDER BY created_at, id"
    ))
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

pub(super) async fn revoke_token(pool: &Pool<Db>, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn revoke_org_tokens_named(pool: &Pool<Db>, org_id: &str, name: &str) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $3 \
         WHERE organization_id = $1 AND name = $2 AND revoked_at IS NULL",
    )
    .bind(org_id)
    .bind(name)
    .bind(now())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Records use, at most once a minute per token, to keep reads cheap.
pub(super) async fn touch_token(pool: &Pool<Db>, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = $2 \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(id)
    .bind(at)
    .bind(at - chrono::Duration::minutes(1))
    .execute(pool)
    .await?;
    Ok(())
}

// === agents ===

const AGENT_COLUMNS: &str = "id, name, sip_uri, created_at, updated_at";

pub(super) async fn list_agents(pool: &Pool<Db>, org_id: &str, page: &PageRequest) -> Result<Page<Agent>, StoreError> {
    let rows: Vec<Agent> = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE organization_id = $1 AND ($2 IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    ))
    .bind(org_id)
    .bind(&page.after)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await?;
    Ok(paginate(rows, page.limit, |a| a.id.clone()))
}

pub(super) async fn get_agent(pool: &Pool<Db>, org_id: &str, id: &str) -> Result<Option<Agent>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn insert_agent(pool: &Pool<Db>, org_id: &str, id: &str, fields: &AgentFields) -> Result<Agent, StoreError> {
    let at = now();
    sqlx::query_as(&format!(
        "INSERT INTO agents (organization_id, id, name, sip_uri, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {AGENT_COLUMNS}"
    ))
    .bind(org_id)
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.sip_uri)
    .bind(at)
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "an agent with this id already exists"))
}

pub(super) async fn update_agent(pool: &Pool<Db>, org_id: &str, id: &str, fields: &AgentFields) -> Result<Option<Agent>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE agents SET name = $3, sip_uri = $4, updated_at = $5 \
         WHERE organization_id = $1 AND id = $2 RETURNING {AGENT_COLUMNS}"
    ))
    .bind(org_id)
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.sip_uri)
    .bind(now())
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn delete_agent(pool: &Pool<Db>, org_id: &str, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM agents WHERE organization_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(pool)
        .await
        .map_err(|e| {
            StoreError::from_sqlx(
                e,
                "the agent is still used by a phone number or the routing config's fallback",
            )
        })?;
    Ok(done.rows_affected() == 1)
}

const VERSION_COLUMNS: &str = "agent_id, version, status, created_at, published_at";

pub(super) async fn list_agent_versions(pool: &Pool<Db>, org_id: &str, agent_id: &str) -> Result<Vec<AgentVersion>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM agent_versions \
         WHERE organization_id = $1 AND agent_id = $2 ORDER BY version"
    ))
    .bind(org_id)
    .bind(agent_id)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn get_agent_version(pool: &Pool<Db>, org_id: &str, agent_id: &str, version: i64) -> Result<Option<AgentVersion>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM agent_versions \
         WHERE organization_id = $1 AND agent_id = $2 AND version = $3"
    ))
    .bind(org_id)
    .bind(agent_id)
    .bind(version)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn insert_next_agent_version(pool: &Pool<Db>, org_id: &str, agent_id: &str) -> Result<AgentVersion, StoreError> {
    sqlx::query_as(&format!(
        "INSERT INTO agent_versions (organization_id, agent_id, version, status, created_at) \
         SELECT $1, $2, COALESCE(MAX(version), 0) + 1, 'draft', $3 FROM agent_versions \
         WHERE organization_id = $1 AND agent_id = $2 RETURNING {VERSION_COLUMNS}"
    ))
    .bind(org_id)
    .bind(agent_id)
    .bind(now())
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "another version was created at the same time; retry"))
}

/// Publishes a version and points each given number at the agent, all or nothing.
pub(super) async fn publish_agent_version(
    pool: &Pool<Db>,
    org_id: &str,
    agent_id: &str,
    version: i64,
    phone_numbers: &[String],
) -> Result<AgentVersion, StoreError> {
    let mut tx = pool.begin().await?;
    let at = now();
    let published: Option<AgentVersion> = sqlx::query_as(&format!(
        "UPDATE agent_versions SET status = 'published', published_at = COALESCE(published_at, $4) \
         WHERE organization_id = $1 AND agent_id = $2 AND version = $3 RETURNING {VERSION_COLUMNS}"
    ))
    .bind(org_id)
    .bind(agent_id)
    .bind(version)
    .bind(at)
    .fetch_optional(&mut *tx)
    .await?;
    let published = published.ok_or(StoreError::NotFound { what: "agent version" })?;
    for (i, number) in phone_numbers.iter().enumerate() {
        let done = sqlx::query(
            "UPDATE phone_numbers SET inbound_agent_id = $3, inbound_agent_version = NULL, updated_at = $4 \
             WHERE organization_id = $1 AND e164 = $2",
        )
        .bind(org_id)
        .bind(number)
        .bind(agent_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid {
                path: format!("$.phone_numbers[{i}]"),
                message: format!("{number} is not a phone number of this organization"),
            });
        }
    }
    tx.commit().await?;
    Ok(published)
}

// === trunks ===

#[derive(FromRow)]
struct TrunkRow {
    id: String,
    name: String,
    inbound_addresses: String,
    auth_username: Option<String>,
    auth_password: Option<String>,
    trust_asserted_identity: bool,
    default_country_code: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TrunkRow> for Trunk {
    type Error = StoreError;

    fn try_from(row: TrunkRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            fields: TrunkFields {
                name: row.name,
                inbound_addresses: decode_json(&row.inbound_addresses)?,
                auth_username: row.auth_username,
                auth_password: row.auth_password,
                trust_asserted_identity: row.trust_asserted_identity,
                default_country_code: row.default_country_code,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const TRUNK_COLUMNS: &str = "id, name, inbound_addresses, auth_username, auth_password, \
                             trust_asserted_identity, default_country_code, created_at, updated_at";

pub(super) async fn list_trunks(pool: &Pool<Db>, org_id: &str, page: &PageRequest) -> Result<Page<Trunk>, StoreError> {
    let rows: Vec<TrunkRow> = sqlx::query_as(&format!(
        "SELECT {TRUNK_COLUMNS} FROM trunks WHERE organization_id = $1 AND ($2 IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    ))
    .bind(org_id)
    .bind(&page.after)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await?;
    let trunks = rows.into_iter().map(Trunk::try_from).collect::<Result<Vec<_>, _>>()?;
    Ok(paginate(trunks, page.limit, |t| t.id.clone()))
}

pub(super) async fn get_trunk(pool: &Pool<Db>, org_id: &str, id: &str) -> Result<Option<Trunk>, StoreError> {
    let row: Option<TrunkRow> = sqlx::query_as(&format!(
        "SELECT {TRUNK_COLUMNS} FROM trunks WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(Trunk::try_from).transpose()
}

pub(super) async fn insert_trunk(pool: &Pool<Db>, org_id: &str, id: &str, f: &TrunkFields) -> Result<Trunk, StoreError> {
    let row: TrunkRow = sqlx::query_as(&format!(
        "INSERT INTO trunks (id, organization_id, name, inbound_addresses, auth_username, auth_password, \
         trust_asserted_identity, default_country_code, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {TRUNK_COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(&f.name)
    .bind(encode_json(&f.inbound_addresses))
    .bind(&f.auth_username)
    .bind(&f.auth_password)
    .bind(f.trust_asserted_identity)
    .bind(&f.default_country_code)
    .bind(now())
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "a trunk with this id already exists"))?;
    row.try_into()
}

pub(super) async fn update_trunk(pool: &Pool<Db>, org_id: &str, id: &str, f: &TrunkFields) -> Result<Option<Trunk>, StoreError> {
    let row: Option<TrunkRow> = sqlx::query_as(&format!(
        "UPDATE trunks SET name = $3, inbound_addresses = $4, auth_username = $5, auth_password = $6, \
         trust_asserted_identity = $7, default_country_code = $8, updated_at = $9 \
         WHERE organization_id = $1 AND id = $2 RETURNING {TRUNK_COLUMNS}"
    ))
    .bind(org_id)
    .bind(id)
    .bind(&f.name)
    .bind(encode_json(&f.inbound_addresses))
    .bind(&f.auth_username)
    .bind(&f.auth_password)
    .bind(f.trust_asserted_identity)
    .bind(&f.default_country_code)
    .bind(now())
    .fetch_optional(pool)
    .await?;
    row.map(Trunk::try_from).transpose()
}

pub(super) async fn delete_trunk(pool: &Pool<Db>, org_id: &str, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM trunks WHERE organization_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "the trunk still carries phone numbers"))?;
    Ok(done.rows_affected() == 1)
}

// === phone numbers ===

#[derive(FromRow)]
struct NumberRow {
    id: String,
    e164: String,
    trunk_id: String,
    inbound_agent_id: Option<String>,
    inbound_agent_version: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<NumberRow> for PhoneNumber {
    fn from(row: NumberRow) -> Self {
        Self {
            id: row.id,
            fields: PhoneNumberFields {
                phone_number: row.e164,
                trunk_id: row.trunk_id,
                inbound_agent_id: row.inbound_agent_id,
                inbound_agent_version: row.inbound_agent_version,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const NUMBER_COLUMNS: &str =
    "id, e164, trunk_id, inbound_agent_id, inbound_agent_version, created_at, updated_at";
const NUMBER_CONFLICT: &str =
    "the phone number is already registered, or its trunk or agent does not exist";

pub(super) async fn list_numbers(pool: &Pool<Db>, org_id: &str, page: &PageRequest) -> Result<Page<PhoneNumber>, StoreError> {
    let rows: Vec<NumberRow> = sqlx::query_as(&format!(
        "SELECT {NUMBER_COLUMNS} FROM phone_numbers WHERE organization_id = $1 AND ($2 IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    ))
    .bind(org_id)
    .bind(&page.after)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await?;
    let numbers = rows.into_iter().map(PhoneNumber::from).collect();
    Ok(paginate(numbers, page.limit, |n: &PhoneNumber| n.id.clone()))
}

pub(super) async fn get_number(pool: &Pool<Db>, org_id: &str, id: &str) -> Result<Option<PhoneNumber>, StoreError> {
    let row: Option<NumberRow> = sqlx::query_as(&format!(
        "SELECT {NUMBER_COLUMNS} FROM phone_numbers WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(PhoneNumber::from))
}

pub(super) async fn insert_number(pool: &Pool<Db>, org_id: &str, id: &str, f: &PhoneNumberFields) -> Result<PhoneNumber, StoreError> {
    let row: NumberRow = sqlx::query_as(&format!(
        "INSERT INTO phone_numbers (id, organization_id, trunk_id, e164, inbound_agent_id, \
         inbound_agent_version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {NUMBER_COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(&f.trunk_id)
    .bind(&f.phone_number)
    .bind(&f.inbound_agent_id)
    .bind(f.inbound_agent_version)
    .bind(now())
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, NUMBER_CONFLICT))?;
    Ok(row.into())
}

pub(super) async fn update_number(pool: &Pool<Db>, org_id: &str, id: &str, f: &PhoneNumberFields) -> Result<Option<PhoneNumber>, StoreError> {
    let row: Option<NumberRow> = sqlx::query_as(&format!(
        "UPDATE phone_numbers SET trunk_id = $3, e164 = $4, inbound_agent_id = $5, \
         inbound_agent_version = $6, updated_at = $7 \
         WHERE organization_id = $1 AND id = $2 RETURNING {NUMBER_COLUMNS}"
    ))
    .bind(org_id)
    .bind(id)
    .bind(&f.trunk_id)
    .bind(&f.phone_number)
    .bind(&f.inbound_agent_id)
    .bind(f.inbound_agent_version)
    .bind(now())
    .fetch_optional(pool)
    .await
    .map_err(|e| StoreError::from_sqlx(e, NUMBER_CONFLICT))?;
    Ok(row.map(PhoneNumber::from))
}

pub(super) async fn delete_number(pool: &Pool<Db>, org_id: &str, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM phone_numbers WHERE organization_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

// === inbound routing config and its revisions ===

#[derive(FromRow)]
struct ConfigRow {
    id: String,
    organization_id: String,
    workflow_definition: String,
    fallback_agent_id: Option<String>,
    fallback_agent_version: Option<i64>,
    enabled: bool,
    revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ConfigRow> for RoutingConfig {
    type Error = StoreError;

    fn try_from(row: ConfigRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            organization_id: row.organization_id,
            fields: RoutingConfigFields {
                workflow_definition: decode_json(&row.workflow_definition)?,
                fallback_agent_id: row.fallback_agent_id,
                fallback_agent_version: row.fallback_agent_version,
                enabled: row.enabled,
            },
            revision: row.revision,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const CONFIG_COLUMNS: &str = "id, organization_id, workflow_definition, fallback_agent_id, \
                              fallback_agent_version, enabled, revision, created_at, updated_at";
const FALLBACK_CONFLICT: &str = "the fallback agent does not exist in this organization";

pub(super) async fn get_config(pool: &Pool<Db>, org_id: &str) -> Result<Option<RoutingConfig>, StoreError> {
    let row: Option<ConfigRow> = sqlx::query_as(&format!(
        "SELECT {CONFIG_COLUMNS} FROM inbound_routing_configs WHERE organization_id = $1"
    ))
    .bind(org_id)
    .fetch_optional(pool)
    .await?;
    row.map(RoutingConfig::try_from).transpose()
}

/// Creates the config; `Conflict` if one exists. Writes the revision too.
pub(super) async fn create_config(
    pool: &Pool<Db>,
    org_id: &str,
    id: &str,
    fields: &RoutingConfigFields,
    change: ChangeKind,
    changed_by: &str,
) -> Result<RoutingConfig, StoreError> {
    let mut tx = pool.begin().await?;
    let at = now();
    let row: ConfigRow = sqlx::query_as(&format!(
        "INSERT INTO inbound_routing_configs (id, organization_id, workflow_definition, fallback_agent_id, \
         fallback_agent_version, enabled, revision, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, \
           (SELECT COALESCE(MAX(revision), 0) + 1 FROM inbound_routing_config_revisions WHERE organization_id = $2), \
           $7, $7) \
         RETURNING {CONFIG_COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(encode_json(&fields.workflow_definition))
    .bind(&fields.fallback_agent_id)
    .bind(fields.fallback_agent_version)
    .bind(fields.enabled)
    .bind(at)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match StoreError::from_sqlx(e, "") {
        StoreError::Conflict { .. } => config_conflict(org_id, fields),
        other => other,
    })?;
    insert_revision(&mut tx, org_id, row.revision, change, Some(fields), changed_by, at).await?;
    tx.commit().await?;
    row.try_into()
}

/// A unique violation means a config exists; a reference violation means the fallback agent is missing.
fn config_conflict(_org_id: &str, fields: &RoutingConfigFields) -> StoreError {
    if fields.fallback_agent_id.is_some() {
        StoreError::Conflict {
            detail: format!("an inbound routing config already exists, or {FALLBACK_CONFLICT}"),
        }
    } else {
        StoreError::Conflict {
            detail: "an inbound routing config already exists".to_owned(),
        }
    }
}

/// Replaces the config's fields if it is still at `base_revision`; `Stale` otherwise.
pub(super) async fn update_config(
    pool: &Pool<Db>,
    org_id: &str,
    base_revision: i64,
    fields: &RoutingConfigFields,
    change: ChangeKind,
    changed_by: &str,
) -> Result<RoutingConfig, StoreError> {
    let mut tx = pool.begin().await?;
    let at = now();
    let row: Option<ConfigRow> = sqlx::query_as(&format!(
        "UPDATE inbound_routing_configs SET workflow_definition = $3, fallback_agent_id = $4, \
         fallback_agent_version = $5, enabled = $6, revision = $2 + 1, updated_at = $7 \
         WHERE organization_id = $1 AND revision = $2 RETURNING {CONFIG_COLUMNS}"
    ))
    .bind(org_id)
    .bind(base_revision)
    .bind(encode_json(&fields.workflow_definition))
    .bind(&fields.fallback_agent_id)
    .bind(fields.fallback_agent_version)
    .bind(fields.enabled)
    .bind(at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| StoreError::from_sqlx(e, FALLBACK_CONFLICT))?;
    let row = row.ok_or(StoreError::Stale)?;
    insert_revision(&mut tx, org_id, row.revision, change, Some(fields), changed_by, at).await?;
    tx.commit().await?;
    row.try_into()
}

/// Deletes the config if it is still at `base_revision`; `Stale` otherwise.
pub(super) async fn delete_config(pool: &Pool<Db>, org_id: &str, base_revision: i64, changed_by: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("DELETE FROM inbound_routing_configs WHERE organization_id = $1 AND revision = $2")
        .bind(org_id)
        .bind(base_revision)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    insert_revision(&mut tx, org_id, base_revision + 1, ChangeKind::Delete, None, changed_by, now()).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_revision(
    tx: &mut sqlx::Transaction<'_, Db>,
    org_id: &str,
    revision: i64,
    change: ChangeKind,
    config: Option<&RoutingConfigFields>,
    changed_by: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO inbound_routing_config_revisions \
         (organization_id, revision, change, config, changed_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(org_id)
    .bind(revision)
    .bind(change.as_str())
    .bind(config.map(encode_json))
    .bind(changed_by)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "the config was changed concurrently; retry"))?;
    Ok(())
}

#[derive(FromRow)]
struct RevisionRow {
    revision: i64,
    change: String,
    config: Option<String>,
    changed_by: String,
    changed_at: DateTime<Utc>,
}

impl TryFrom<RevisionRow> for ConfigRevision {
    type Error = StoreError;

    fn try_from(row: RevisionRow) -> Result<Self, StoreError> {
        Ok(Self {
            revision: row.revision,
            change: ChangeKind::from_db(&row.change)
                .ok_or_else(|| StoreError::Corrupt(format!("revision change {:?}", row.change)))?,
            config: row.config.as_deref().map(decode_json).transpose()?,
            changed_by: row.changed_by,
            changed_at: row.changed_at,
        })
    }
}

const REVISION_COLUMNS: &str = "revision, change, config, changed_by, changed_at";

/// Newest first; `before` is the revision number to continue below.
pub(super) async fn list_revisions(pool: &Pool<Db>, org_id: &str, limit: u32, before: Option<i64>) -> Result<Vec<ConfigRevision>, StoreError> {
    let rows: Vec<RevisionRow> = sqlx::query_as(&format!(
        "SELECT {REVISION_COLUMNS} FROM inbound_routing_config_revisions \
         WHERE organization_id = $1 AND ($2 IS NULL OR revision < $2) ORDER BY revision DESC LIMIT $3"
    ))
    .bind(org_id)
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(ConfigRevision::try_from).collect()
}

pub(super) async fn get_revision(pool: &Pool<Db>, org_id: &str, revision: i64) -> Result<Option<ConfigRevision>, StoreError> {
    let row: Option<RevisionRow> = sqlx::query_as(&format!(
        "SELECT {REVISION_COLUMNS} FROM inbound_routing_config_revisions \
         WHERE organization_id = $1 AND revision = $2"
    ))
    .bind(org_id)
    .bind(revision)
    .fetch_optional(pool)
    .await?;
    row.map(ConfigRevision::try_from).transpose()
}

// === helpers ===

/// Turns `limit + 1` fetched rows into a page and the cursor of the next one.
fn paginate<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(key)
    } else {
        None
    };
    Page { items: rows, next_cursor }
}

// === workflow secrets and routing snapshot reads ===

pub(super) async fn put_secret(pool: &Pool<Db>, org_id: &str, name: &str, value: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workflow_secrets (organization_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organization_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(name)
    .bind(value)
    .bind(now())
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn delete_secret(pool: &Pool<Db>, org_id: &str, name: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM workflow_secrets WHERE organization_id = $1 AND name = $2")
        .bind(org_id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn list_secret_names(pool: &Pool<Db>, org_id: &str) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    Ok(sqlx::query_as("SELECT name, updated_at FROM workflow_secrets WHERE organization_id = $1 ORDER BY name")
        .bind(org_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn org_secrets(pool: &Pool<Db>, org_id: &str) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT name, value FROM workflow_secrets WHERE organization_id = $1")
        .bind(org_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn all_agents(pool: &Pool<Db>, org_id: &str) -> Result<Vec<Agent>, StoreError> {
    Ok(sqlx::query_as(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE organization_id = $1"))
        .bind(org_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn published_versions(pool: &Pool<Db>, org_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT agent_id, version FROM agent_versions \
         WHERE organization_id = $1 AND status = 'published' ORDER BY agent_id, version",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn all_numbers(pool: &Pool<Db>, org_id: &str) -> Result<Vec<PhoneNumber>, StoreError> {
    let rows: Vec<NumberRow> =
        sqlx::query_as(&format!("SELECT {NUMBER_COLUMNS} FROM phone_numbers WHERE organization_id = $1"))
            .bind(org_id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(PhoneNumber::from).collect())
}

pub(super) async fn all_trunks(pool: &Pool<Db>, org_id: &str) -> Result<Vec<Trunk>, StoreError> {
    let rows: Vec<TrunkRow> =
        sqlx::query_as(&format!("SELECT {TRUNK_COLUMNS} FROM trunks WHERE organization_id = $1"))
            .bind(org_id)
            .fetch_all(pool)
            .await?;
    rows.into_iter().map(Trunk::try_from).collect()
}

// === routing decisions (the decision log) ===

#[derive(FromRow)]
struct DecisionRow {
    id: String,
    organization_id: String,
    call_id: String,
    trunk_id: Option<String>,
    caller_number: Option<String>,
    called_number: Option<String>,
    received_at: DateTime<Utc>,
    duration_us: i64,
    outcome: String,
    reason: String,
    agent_id: Option<String>,
    agent_version: Option<i64>,
    sip_status: i64,
    initial_context: Option<String>,
    custom_metadata: Option<String>,
    trace: Option<String>,
}

impl TryFrom<DecisionRow> for DecisionRecord {
    type Error = StoreError;

    fn try_from(r: DecisionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            organization_id: r.organization_id,
            call_id: r.call_id,
            trunk_id: r.trunk_id,
            caller_number: r.caller_number,
            called_number: r.called_number,
            received_at: r.received_at,
            duration_us: r.duration_us,
            outcome: r.outcome,
            reason: r.reason,
            agent_id: r.agent_id,
            agent_version: r.agent_version,
            sip_status: r.sip_status,
            initial_context: r.initial_context,
            custom_metadata: r.custom_metadata.as_deref().map(decode_json).transpose()?,
            trace: r.trace.as_deref().map(decode_json).transpose()?,
        })
    }
}

const DECISION_COLUMNS: &str = "id, organization_id, call_id, trunk_id, caller_number, called_number, received_at, \
    duration_us, outcome, reason, agent_id, agent_version, sip_status, initial_context, custom_metadata, trace";

/// Writes a batch in one transaction, up to 200 rows per statement; ids
/// already present are skipped, so a batch retried after an outage never
/// duplicates.
pub(super) async fn insert_decisions(pool: &Pool<Db>, batch: &[std::sync::Arc<DecisionRecord>]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for chunk in batch.chunks(200) {
        let mut sql = format!("INSERT INTO routing_decisions ({DECISION_COLUMNS}) VALUES ");
        for i in 0..chunk.len() {
            let b = i * 16;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&(1..=16).map(|k| format!("${}", b + k)).collect::<Vec<_>>().join(", "));
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (id) DO NOTHING");
        let mut query = sqlx::query(&sql);
        for d in chunk {
            query = query
                .bind(&d.id)
                .bind(&d.organization_id)
                .bind(&d.call_id)
                .bind(&d.trunk_id)
                .bind(&d.caller_number)
                .bind(&d.called_number)
                .bind(d.received_at)
                .bind(d.duration_us)
                .bind(&d.outcome)
                .bind(&d.reason)
                .bind(&d.agent_id)
                .bind(d.agent_version)
                .bind(d.sip_status)
                .bind(&d.initial_context)
                .bind(d.custom_metadata.as_ref().map(encode_json))
                .bind(d.trace.as_ref().map(encode_json));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Newest first, ids below `before` (ids are time-ordered).
pub(super) async fn list_decisions(
    pool: &Pool<Db>,
    org_id: &str,
    f: &DecisionFilter,
    limit: u32,
    before: Option<&str>,
) -> Result<Vec<DecisionRecord>, StoreError> {
    let rows: Vec<DecisionRow> = sqlx::query_as(&format!(
        "SELECT {DECISION_COLUMNS} FROM routing_decisions WHERE organization_id = $1 \
         AND ($2 IS NULL OR call_id = $2) AND ($3 IS NULL OR caller_number = $3) \
         AND ($4 IS NULL OR called_number = $4) AND ($5 IS NULL OR outcome = $5) \
         AND ($6 IS NULL OR received_at >= $6) AND ($7 IS NULL OR received_at < $7) \
         AND ($8 IS NULL OR id < $8) ORDER BY id DESC LIMIT $9"
    ))
    .bind(org_id)
    .bind(&f.call_id)
    .bind(&f.caller_number)
    .bind(&f.called_number)
    .bind(&f.outcome)
    .bind(f.since)
    .bind(f.until)
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(DecisionRecord::try_from).collect()
}

pub(super) async fn get_decision(pool: &Pool<Db>, org_id: &str, id: &str) -> Result<Option<DecisionRecord>, StoreError> {
    let row: Option<DecisionRow> = sqlx::query_as(&format!(
        "SELECT {DECISION_COLUMNS} FROM routing_decisions WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(DecisionRecord::try_from).transpose()
}

/// Deletes decisions received before `cutoff`; returns how many.
pub(super) async fn purge_decisions(pool: &Pool<Db>, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM routing_decisions WHERE received_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

// === change propagation ===

pub(super) async fn bump_change(pool: &Pool<Db>, org_id: &str) -> Result<i64, StoreError> {
    let (version,): (i64,) = sqlx::query_as(
        "INSERT INTO org_change_counters (organization_id, version) VALUES ($1, 1) \
         ON CONFLICT (organization_id) DO UPDATE SET version = org_change_counters.version + 1 \
         RETURNING version",
    )
    .bind(org_id)
    .fetch_one(pool)
    .await?;
    Ok(version)
}

pub(super) async fn change_counters(pool: &Pool<Db>) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as("SELECT organization_id, version FROM org_change_counters")
        .fetch_all(pool)
        .await?)
}
