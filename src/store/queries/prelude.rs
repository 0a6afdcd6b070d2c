// Every SQL statement of the daemon, written once and compiled for each backend.
//
// The files of this folder are `include!`d, this one first, by `store::sqlite`
// and `store::postgres`, each of which defines `type Db` first. Both backends accept `$N` placeholders and the
// same column types through sqlx (TEXT, BIGINT/INTEGER, BOOLEAN, timestamps), so
// one text serves both; where the dialects differ the SQL must stay in the
// common subset (the one exception, the decision log's bulk INSERT, says why).
// Every query on tenant data takes the organization id.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, Pool};

use super::error::StoreError;
use super::types::*;
use super::{decode_json, encode_json, now};
use crate::token::{Scope, TokenKind};

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
