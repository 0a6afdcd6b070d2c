//! The store's error type. Handlers map it to HTTP in `admin::error`.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row the operation needs does not exist (in the caller's organization).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The write would break a uniqueness or reference rule.
    #[error("{detail}")]
    Conflict { detail: String },
    /// The row changed since the caller read it (optimistic concurrency).
    #[error("the record was changed concurrently")]
    Stale,
    /// A referenced value is not acceptable; `path` is the JSON path of the input.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// The database holds something this version cannot read.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database could not be reached or failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Classifies a driver error, naming constraint violations in domain words.
    pub(crate) fn from_sqlx(error: sqlx::Error, conflict: &str) -> Self {
        use sqlx::error::ErrorKind;
        match &error {
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => Self::Conflict {
                    detail: conflict.to_owned(),
                },
                _ => Self::Database(error),
            },
            _ => Self::Database(error),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}
