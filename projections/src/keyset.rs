//! Keyset pages over `(timestamp, id)`: the one way list queries page (stable under inserts,
//! no offsets).

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::company::{Cursor, Page};

/// Adds the "after the cursor" condition and the order, and asks for one row more than the
/// page (to know whether another page follows). `column` and `id` name the key columns.
pub fn push_page(
    q: &mut QueryBuilder<'_, Postgres>,
    column: &str,
    id: &str,
    after: Option<&Cursor>,
    descending: bool,
    limit: i64,
) -> anyhow::Result<()> {
    let (cmp, dir) = if descending { ("<", "DESC") } else { (">", "ASC") };
    if let Some(c) = after {
        let at: DateTime<Utc> = c.key.parse()?;
        q.push(format!(" AND ({column}, {id}) {cmp} (")).push_bind(at).push(", ").push_bind(c.id).push(")");
    }
    q.push(format!(" ORDER BY {column} {dir}, {id} {dir} LIMIT ")).push_bind(limit + 1);
    Ok(())
}

/// The page and the cursor of the next one, from rows fetched after [`push_page`].
pub fn page<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> (DateTime<Utc>, Uuid)) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| {
            let (at, id) = key(r);
            Cursor { key: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), id }.encode()
        })
    } else {
        None
    };
    Page { items: rows, next_cursor }
}
