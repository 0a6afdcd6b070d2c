// The decision log.

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
            trace: r.trace.map(JsonText::parse).transpose().map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }
}

const DECISION_COLUMNS: &str = "id, organization_id, call_id, trunk_id, caller_number, called_number, received_at, \
    duration_us, outcome, reason, agent_id, agent_version, sip_status, initial_context, custom_metadata, trace";

/// Rows per multi-row INSERT. Fixed, so that few distinct statements exist
/// (full chunks plus one remainder size) and all stay in the connection's
/// prepared-statement cache.
const ROWS_PER_STATEMENT: usize = 64;

/// Writes a batch in one transaction; ids already present are skipped, so a
/// batch retried after an outage never duplicates.
pub(super) async fn insert_decisions(pool: &Pool<Db>, batch: &[std::sync::Arc<DecisionRecord>]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(insert_sql(chunk.len()));
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
                .bind(d.trace.as_ref().map(JsonText::as_str));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The INSERT for `rows` rows (1..=ROWS_PER_STATEMENT), built once.
///
/// The one statement whose text differs by backend. On SQLite, anonymous
/// `?` parameters (sqlx looks named ones up linearly, once per parameter) and
/// `OR IGNORE` (no constraint can abort half-way, so SQLite keeps no
/// statement journal inside the batch's transaction). PostgreSQL skips
/// duplicate ids with `ON CONFLICT DO NOTHING`.
fn insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let sqlite = <Db as sqlx::Database>::NAME == "SQLite";
    let all = SQL.get_or_init(|| {
        (1..=ROWS_PER_STATEMENT)
            .map(|n| {
                let values: Vec<String> = (0..n)
                    .map(|row| {
                        let params: Vec<String> =
                            (1..=16).map(|k| if sqlite { "?".to_owned() } else { format!("${}", row * 16 + k) }).collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                if sqlite {
                    format!("INSERT OR IGNORE INTO routing_decisions ({DECISION_COLUMNS}) VALUES {}", values.join(", "))
                } else {
                    format!(
                        "INSERT INTO routing_decisions ({DECISION_COLUMNS}) VALUES {} ON CONFLICT (id) DO NOTHING",
                        values.join(", ")
                    )
                }
            })
            .collect()
    });
    &all[rows - 1]
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
