//! The company read model (`company_view`) and its queries.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::company::{Company, CompanyEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "company_view";
const TABLE: &str = "company_view";

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CompanyRow {
    pub id: Uuid,
    pub name: String,
    pub domain: String,
    pub size: Option<String>,
    pub industry: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
    pub is_active: bool,
    pub user_count: i32,
    pub campaign_count: i32,
    /// Sequence of the last event applied: the ETag of this row.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, domain, size, industry, description, website, is_active, user_count, \
    campaign_count, version, created_at, updated_at, deactivated_at";

/// Applies one event to the row it concerns. Pure, so a replay gives the same rows.
fn fold(row: Option<CompanyRow>, id: Uuid, sequence: i64, event: CompanyEvent) -> Option<CompanyRow> {
    let size = |s: Option<kraliki_domain::values::CompanySize>| s.map(|s| s.as_str().to_owned());
    match (row, event) {
        (_, CompanyEvent::CompanyCreated { name, domain, size: sz, industry, description, website, at }) => {
            Some(CompanyRow {
                id,
                name,
                domain,
                size: size(sz),
                industry,
                description,
                website,
                is_active: true,
                user_count: 0,
                campaign_count: 0,
                version: sequence,
                created_at: at,
                updated_at: at,
                deactivated_at: None,
            })
        }
        (None, _) => None,
        (Some(mut row), event) => {
            match event {
                CompanyEvent::CompanyCreated { .. } => unreachable!("handled above"),
                CompanyEvent::CompanyRenamed { name, at, .. } => {
                    row.name = name;
                    row.updated_at = at;
                }
                CompanyEvent::CompanyProfileUpdated {
                    domain,
                    size: sz,
                    industry,
                    description,
                    website,
                    at,
                } => {
                    row.domain = domain;
                    row.size = size(sz);
                    row.industry = industry;
                    row.description = description;
                    row.website = website;
                    row.updated_at = at;
                }
                CompanyEvent::CompanyDeactivated { at, .. } => {
                    row.is_active = false;
                    row.deactivated_at = Some(at);
                    row.updated_at = at;
                }
                CompanyEvent::CompanyReactivated { at } => {
                    row.is_active = true;
                    row.deactivated_at = None;
                    row.updated_at = at;
                }
            }
            row.version = sequence;
            Some(row)
        }
    }
}

pub struct CompanyProjection;

#[async_trait]
impl Projection for CompanyProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        // 2: campaigns are counted.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["Company", "Campaign"]).and_events("User", &["UserRegistered"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        tables: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        let table = tables.get(TABLE);
        let mut decoded = Vec::new();
        for event in events.iter().filter(|e| e.aggregate_type == <Company as cqrs_es::Aggregate>::TYPE) {
            let id: Uuid = event.aggregate_id.parse()?;
            let payload: CompanyEvent = event.decode()?;
            decoded.push((id, event.sequence, payload));
        }
        // Users registered per company (the user count of the read shape).
        let mut joined: HashMap<Uuid, i32> = HashMap::new();
        for event in events.iter().filter(|e| e.event_type == "UserRegistered") {
            if let Ok(kraliki_domain::user::UserEvent::UserRegistered { company_id, .. }) = event.decode() {
                if let Ok(company) = company_id.parse() {
                    *joined.entry(company).or_default() += 1;
                }
            }
        }
        // Campaigns per company (created minus deleted), by the tenant that owns them.
        let mut campaigns: HashMap<Uuid, i32> = HashMap::new();
        for event in events.iter().filter(|e| e.aggregate_type == "Campaign") {
            let delta = match event.event_type.as_str() {
                "CampaignCreated" => 1,
                "CampaignDeleted" => -1,
                _ => continue,
            };
            if let Ok(tenant) = event.tenant() {
                *campaigns.entry(tenant).or_default() += delta;
            }
        }
        if decoded.is_empty() {
            add_counts(conn, table, "user_count", joined).await?;
            return add_counts(conn, table, "campaign_count", campaigns).await;
        }
        // One lookup per company, however many of its events the batch holds.
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let sql = format!("SELECT {COLUMNS} FROM {table} WHERE id = ANY($1)");
        let existing: Vec<CompanyRow> = sqlx::query_as(&sql).bind(&ids).fetch_all(&mut *conn).await?;
        let mut rows: HashMap<Uuid, Option<CompanyRow>> =
            existing.into_iter().map(|r| (r.id, Some(r))).collect();
        for (id, sequence, event) in decoded {
            let current = rows.remove(&id).flatten();
            rows.insert(id, fold(current, id, sequence, event));
        }
        let rows: Vec<CompanyRow> = rows.into_values().flatten().collect();
        if rows.is_empty() {
            add_counts(conn, table, "user_count", joined).await?;
            return add_counts(conn, table, "campaign_count", campaigns).await;
        }
        // One statement with one array per column: its plan does not grow with the batch.
        let sql = format!(
            "INSERT INTO {table} ({COLUMNS}) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                                  $7::text[], $8::bool[], $9::int[], $10::int[], $11::bigint[], \
                                  $12::timestamptz[], $13::timestamptz[], $14::timestamptz[]) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, domain = excluded.domain, size = excluded.size, \
             industry = excluded.industry, description = excluded.description, website = excluded.website, \
             is_active = excluded.is_active, version = excluded.version, updated_at = excluded.updated_at, \
             deactivated_at = excluded.deactivated_at"
        );
        sqlx::query(&sql)
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.size.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.industry.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.description.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.website.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.is_active).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.user_count).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.campaign_count).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.deactivated_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        add_counts(conn, table, "user_count", joined).await?;
        add_counts(conn, table, "campaign_count", campaigns).await
    }
}

/// Adds per-company deltas to a counter column (`column` comes from code, never input).
async fn add_counts(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    deltas: HashMap<Uuid, i32>,
) -> anyhow::Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let (ids, counts): (Vec<Uuid>, Vec<i32>) = deltas.into_iter().unzip();
    sqlx::query(&format!(
        "UPDATE {table} t SET {column} = t.{column} + j.n FROM unnest($1::uuid[], $2::int[]) AS j(id, n) WHERE t.id = j.id"
    ))
    .bind(ids)
    .bind(counts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// List filters and paging.
#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    /// Restrict to these ids (tenant scoping); `None` means every company.
    pub only: Option<Vec<Uuid>>,
    pub is_active: Option<bool>,
    /// Case-insensitive substring of name or domain.
    pub search: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompanySort {
    CreatedAt,
    Name,
}

/// A page cursor: the sort key and id of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}~{}", self.key, self.id)
    }
    pub fn decode(raw: &str) -> Option<Self> {
        let (key, id) = raw.rsplit_once('~')?;
        Some(Self { key: key.to_owned(), id: id.parse().ok()? })
    }
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A page of companies in `sort` order. Both orders are served by an index (`created_at, id`
/// and `lower(name), id`): a page reads its rows and stops, whatever the table's size.
pub async fn list(
    pool: &PgPool,
    filter: &CompanyFilter,
    sort: CompanySort,
    descending: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<CompanyRow>> {
    let key_sql = match sort {
        CompanySort::CreatedAt => "created_at",
        CompanySort::Name => "lower(name)",
    };
    let (cmp, dir) = if descending { ("<", "DESC") } else { (">", "ASC") };
    // The name's key as the index has it (PostgreSQL's `lower`, not Rust's).
    let mut q =
        QueryBuilder::new(format!("SELECT {COLUMNS}, lower(name) AS name_key FROM {TABLE} WHERE true"));
    if let Some(ids) = &filter.only {
        q.push(" AND id = ANY(").push_bind(ids.clone()).push(")");
    }
    if let Some(active) = filter.is_active {
        q.push(" AND is_active = ").push_bind(active);
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = format!(
            "%{}%",
            search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        );
        q.push(" AND (lower(name) LIKE ")
            .push_bind(pattern.clone())
            .push(" OR domain LIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(cursor) = after {
        q.push(format!(" AND ({key_sql}, id) {cmp} ("));
        match sort {
            CompanySort::CreatedAt => q.push_bind(cursor.key.parse::<DateTime<Utc>>()?),
            CompanySort::Name => q.push_bind(cursor.key.clone()),
        };
        q.push(", ").push_bind(cursor.id).push(")");
    }
    q.push(format!(" ORDER BY {key_sql} {dir}, id {dir} LIMIT ")).push_bind(limit + 1);
    let mut rows: Vec<(CompanyRow, String)> = q
        .build()
        .try_map(|row: sqlx::postgres::PgRow| {
            use sqlx::{FromRow, Row};
            Ok((CompanyRow::from_row(&row)?, row.try_get::<String, _>("name_key")?))
        })
        .fetch_all(pool)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some((row, name_key))) => {
            let key = match sort {
                CompanySort::CreatedAt => row.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                CompanySort::Name => name_key.clone(),
            };
            Some(Cursor { key, id: row.id }.encode())
        }
        _ => None,
    };
    Ok(Page { items: rows.into_iter().map(|(row, _)| row).collect(), next_cursor })
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<CompanyRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM {TABLE} WHERE id = $1");
    sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fold_follows_the_lifecycle() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("time");
        let id = Uuid::nil();
        let created = CompanyEvent::CompanyCreated {
            name: "A".into(),
            domain: "a.example".into(),
            size: None,
            industry: None,
            description: None,
            website: None,
            at,
        };
        let row = fold(None, id, 1, created).expect("created");
        let row = fold(
            Some(row),
            id,
            2,
            CompanyEvent::CompanyRenamed { name: "B".into(), previous: "A".into(), at },
        )
        .expect("renamed");
        let row = fold(Some(row), id, 3, CompanyEvent::CompanyDeactivated { reason: None, at })
            .expect("deactivated");
        assert_eq!((row.name.as_str(), row.is_active, row.version), ("B", false, 3));
        assert!(fold(None, id, 1, CompanyEvent::CompanyReactivated { at }).is_none());
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { key: "acme~x".into(), id: Uuid::now_v7() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("garbage"), None);
    }
}
