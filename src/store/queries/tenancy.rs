// Organizations, users, memberships and API tokens.

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
