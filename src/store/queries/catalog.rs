// Agents and their versions, trunks, phone numbers; whole-organization reads for the snapshot.

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
