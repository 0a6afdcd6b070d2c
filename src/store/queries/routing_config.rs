// The inbound routing config, its revisions, and change propagation.

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
        StoreError::Conflict { .. } => config_conflict(fields),
        other => other,
    })?;
    insert_revision(&mut tx, org_id, row.revision, change, Some(fields), changed_by, at).await?;
    tx.commit().await?;
    row.try_into()
}

/// A unique violation means a config exists; a reference violation means the fallback agent is missing.
fn config_conflict(fields: &RoutingConfigFields) -> StoreError {
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
