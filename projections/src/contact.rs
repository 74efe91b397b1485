//! The contact read models: `contact_view` (every contact, imported or created, with its dial
//! history) and `campaign_contact_view` (attempts per campaign). Also the queries the dialer
//! uses: call list members and the next contacts to dial (they read `do_not_call_view` too).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::call::{CallEvent, CallOutcome};
use kraliki_domain::call_list::{ContactFilter, Direction, SortKey};
use kraliki_domain::campaign::CampaignSettings;
use kraliki_domain::contact::{ContactData, ContactEvent};
use kraliki_domain::contact_import::{ContactBatchEvent, ContactImportEvent, ImportedContact};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "contact_view";
const CONTACTS: &str = "contact_view";
const CAMPAIGN_CONTACTS: &str = "campaign_contact_view";
/// Read here by the dial queries; written by `do_not_call`'s projection.
const DNC: &str = "do_not_call_view";

pub struct ContactProjection;

#[async_trait]
impl Projection for ContactProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        4 // 2: callbacks; 3: attempts count from the call's request; 4: imports and do-not-call apart
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CONTACTS, CAMPAIGN_CONTACTS]
    }

    fn reads(&self) -> Option<EventFilter> {
        // Of a call, only what moves a contact's attempts, outcome and callback.
        Some(EventFilter::aggregates(&["ContactBatch", "ContactImport", "Contact"]).and_events(
            "Call",
            &[
                "CallRequested",
                "CallInitiated",
                "CallCompleted",
                "CallFailed",
                "CallDispositionSet",
                "CallbackScheduled",
            ],
        ))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events {
            match e.aggregate_type.as_str() {
                "ContactBatch" => batch(conn, t, e).await?,
                "ContactImport" => import_failed(conn, t, e).await?,
                "Contact" => contact(conn, t, e).await?,
                "Call" => call(conn, t, e).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

fn status_of(data: &ContactData) -> &'static str {
    if data.do_not_call {
        "do_not_call"
    } else {
        "pending"
    }
}

/// Inserts or replaces contacts, one statement for the whole set (an import batch).
#[allow(clippy::too_many_arguments)]
async fn upsert_contacts(
    conn: &mut PgConnection,
    table: &str,
    tenant: Uuid,
    contacts: &[(Uuid, &ContactData, Option<Uuid>, Option<i64>)],
    version: i64,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    if contacts.is_empty() {
        return Ok(());
    }
    let col =
        |f: &dyn Fn(&ContactData) -> Option<String>| contacts.iter().map(|c| f(c.1)).collect::<Vec<_>>();
    let arrays = |f: &dyn Fn(&ContactData) -> &Vec<String>| {
        // Postgres arrays of arrays must be rectangular: pass each as a JSON array instead.
        contacts.iter().map(|c| Value::from(f(c.1).clone())).collect::<Vec<Value>>()
    };
    sqlx::query(&format!(
        "INSERT INTO {table} (id, tenant_id, phone_number, first_name, last_name, email, company, language, timezone, \
         timezones, custom_fields, tags, lists, max_attempts, do_not_call, consent, status, import_id, source_row, \
         version, created_at, updated_at) \
         SELECT u.id, $2, u.phone, u.first_name, u.last_name, u.email, u.company, u.language, u.timezone, \
           ARRAY(SELECT jsonb_array_elements_text(u.timezones)), u.custom_fields, \
           ARRAY(SELECT jsonb_array_elements_text(u.tags)), ARRAY(SELECT jsonb_array_elements_text(u.lists)), \
           u.max_attempts, u.dnc, u.consent, u.status, u.import_id, u.source_row, $20, $21, $21 \
         FROM unnest($1::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
           $10::jsonb[], $11::jsonb[], $12::jsonb[], $13::jsonb[], $14::int[], $15::bool[], $16::text[], $17::text[], \
           $18::uuid[], $19::bigint[]) \
           AS u(id, phone, first_name, last_name, email, company, language, timezone, timezones, custom_fields, tags, \
                lists, max_attempts, dnc, consent, status, import_id, source_row) \
         ON CONFLICT (id) DO UPDATE SET phone_number = excluded.phone_number, first_name = excluded.first_name, \
           last_name = excluded.last_name, email = excluded.email, company = excluded.company, \
           language = excluded.language, timezone = excluded.timezone, timezones = excluded.timezones, \
           custom_fields = excluded.custom_fields, tags = excluded.tags, lists = excluded.lists, \
           max_attempts = excluded.max_attempts, do_not_call = excluded.do_not_call, consent = excluded.consent, \
           status = CASE WHEN excluded.do_not_call THEN 'do_not_call' \
                         WHEN {table}.status = 'do_not_call' THEN 'pending' ELSE {table}.status END, \
           version = excluded.version, updated_at = excluded.updated_at"
    ))
    .bind(contacts.iter().map(|c| c.0).collect::<Vec<_>>())
    .bind(tenant)
    .bind(col(&|d| Some(d.phone_number.clone())))
    .bind(col(&|d| d.first_name.clone()))
    .bind(col(&|d| d.last_name.clone()))
    .bind(col(&|d| d.email.clone()))
    .bind(col(&|d| d.company.clone()))
    .bind(col(&|d| d.language.clone()))
    .bind(col(&|d| d.timezone.clone()))
    .bind(arrays(&|d| &d.timezones))
    .bind(contacts.iter().map(|c| Value::Object(c.1.custom_fields.clone())).collect::<Vec<_>>())
    .bind(arrays(&|d| &d.tags))
    .bind(arrays(&|d| &d.lists))
    .bind(contacts.iter().map(|c| c.1.max_attempts as i32).collect::<Vec<_>>())
    .bind(contacts.iter().map(|c| c.1.do_not_call).collect::<Vec<_>>())
    .bind(col(&|d| serde_json::to_value(d.consent).ok().and_then(|v| v.as_str().map(str::to_owned))))
    .bind(col(&|d| Some(status_of(d).to_owned())))
    .bind(contacts.iter().map(|c| c.2).collect::<Vec<_>>())
    .bind(contacts.iter().map(|c| c.3).collect::<Vec<_>>())
    .bind(version)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn batch(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let ContactBatchEvent::ContactBatchImported { import_id, contacts, at, .. } = e.decode()?;
    let tenant = e.tenant()?;
    let rows: Vec<(Uuid, &ContactData, Option<Uuid>, Option<i64>)> = contacts
        .iter()
        .map(|ImportedContact { id, row, data }| (*id, data, Some(import_id), Some(*row as i64)))
        .collect();
    upsert_contacts(conn, t.get(CONTACTS), tenant, &rows, 0, at).await
}

/// Nothing half-imported: contacts of a failed import go, unless changed since.
async fn import_failed(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    if let ContactImportEvent::ContactImportFailed { .. } = e.decode::<ContactImportEvent>()? {
        let contacts = t.get(CONTACTS);
        sqlx::query(&format!("DELETE FROM {contacts} WHERE import_id = $1 AND version = 0"))
            .bind(e.aggregate_id.parse::<Uuid>()?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn contact(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(CONTACTS);
    let id: Uuid = e.aggregate_id.parse()?;
    match e.decode::<ContactEvent>()? {
        ContactEvent::ContactCreated { data, at }
        | ContactEvent::ContactUpdated { data, at, .. }
        | ContactEvent::ContactMarkedDoNotCall { data, at, .. }
        | ContactEvent::ContactDoNotCallCleared { data, at } => {
            upsert_contacts(conn, table, e.tenant()?, &[(id, &data, None, None)], e.sequence, at).await?;
        }
        ContactEvent::ContactDeleted { .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Dial attempts and their outcomes, per contact and per campaign and contact.
async fn call(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let contacts = t.get(CONTACTS);
    let per_campaign = t.get(CAMPAIGN_CONTACTS);
    match e.decode::<CallEvent>()? {
        CallEvent::CallRequested { contact_id: Some(contact), campaign_id, at, .. }
        | CallEvent::CallInitiated { contact_id: Some(contact), campaign_id, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {contacts} SET attempts = attempts + 1, last_attempt_at = $2, \
                 status = CASE WHEN status = 'do_not_call' THEN status ELSE 'calling' END WHERE id = $1"
            ))
            .bind(contact)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            if let Some(campaign) = campaign_id {
                sqlx::query(&format!(
                    "INSERT INTO {per_campaign} (campaign_id, contact_id, attempts, in_flight, last_attempt_at, done) \
                     VALUES ($1, $2, 1, true, $3, false) ON CONFLICT (campaign_id, contact_id) DO UPDATE \
                     SET attempts = {per_campaign}.attempts + 1, in_flight = true, last_attempt_at = $3, \
                     callback_at = NULL, callback_note = NULL"
                ))
                .bind(campaign)
                .bind(contact)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
        }
        CallEvent::CallCompleted {
            contact_id: Some(contact), campaign_id, outcome, disposition, at, ..
        } => {
            ended(conn, contacts, per_campaign, contact, campaign_id, outcome, disposition, at).await?;
        }
        CallEvent::CallFailed { contact_id: Some(contact), campaign_id, at, .. } => {
            ended(conn, contacts, per_campaign, contact, campaign_id, CallOutcome::Failed, None, at).await?;
        }
        // A disposition set by hand is the contact's last one while no later attempt began.
        CallEvent::CallDispositionSet {
            campaign_id: Some(campaign),
            contact_id: Some(contact),
            started_at: Some(started),
            outcome: Some(_),
            disposition,
            ..
        } => {
            sqlx::query(&format!(
                "UPDATE {per_campaign} SET last_disposition = $3 \
                 WHERE campaign_id = $1 AND contact_id = $2 AND last_attempt_at <= $4"
            ))
            .bind(campaign)
            .bind(contact)
            .bind(disposition)
            .bind(started)
            .execute(&mut *conn)
            .await?;
        }
        CallEvent::CallbackScheduled { callback_at, note, campaign_id, contact_id, at } => {
            sqlx::query(&format!(
                "INSERT INTO {per_campaign} (campaign_id, contact_id, attempts, in_flight, last_attempt_at, done, callback_at, callback_note) \
                 VALUES ($1, $2, 0, false, $5, false, $3, $4) ON CONFLICT (campaign_id, contact_id) DO UPDATE \
                 SET callback_at = $3, callback_note = $4, done = false"
            ))
            .bind(campaign_id)
            .bind(contact_id)
            .bind(callback_at)
            .bind(note)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn ended(
    conn: &mut PgConnection,
    contacts: &str,
    per_campaign: &str,
    contact: Uuid,
    campaign: Option<Uuid>,
    outcome: CallOutcome,
    disposition: Option<String>,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let connected = outcome == CallOutcome::Connected;
    sqlx::query(&format!(
        "UPDATE {contacts} SET last_outcome = $2, updated_at = $4, status = CASE \
           WHEN status = 'do_not_call' THEN status WHEN $3 THEN 'completed' \
           WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END WHERE id = $1"
    ))
    .bind(contact)
    .bind(outcome.as_str())
    .bind(connected)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if let Some(campaign) = campaign {
        sqlx::query(&format!(
            "UPDATE {per_campaign} SET in_flight = false, last_outcome = $3, last_disposition = $4, \
             done = CASE WHEN callback_at > $6 THEN false ELSE done OR $5 END, \
             abandoned_at = CASE WHEN $3 = 'abandoned' THEN $6 ELSE abandoned_at END \
             WHERE campaign_id = $1 AND contact_id = $2"
        ))
        .bind(campaign)
        .bind(contact)
        .bind(outcome.as_str())
        .bind(disposition)
        .bind(connected)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

// Queries ---------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactRow {
    pub id: Uuid,
    pub phone_number: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub timezones: Vec<String>,
    pub custom_fields: Value,
    pub tags: Vec<String>,
    pub lists: Vec<String>,
    pub max_attempts: i32,
    pub do_not_call: bool,
    pub consent: String,
    pub status: String,
    pub attempts: i32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub import_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ContactRow {
    /// The data an import gave this contact (for a change to an imported contact).
    pub fn data(&self) -> ContactData {
        ContactData {
            phone_number: self.phone_number.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            email: self.email.clone(),
            company: self.company.clone(),
            language: self.language.clone(),
            timezone: self.timezone.clone(),
            timezones: self.timezones.clone(),
            timezone_source: Default::default(),
            custom_fields: match &self.custom_fields {
                Value::Object(m) => m.clone(),
                _ => Default::default(),
            },
            tags: self.tags.clone(),
            lists: self.lists.clone(),
            max_attempts: self.max_attempts.max(1) as u32,
            do_not_call: self.do_not_call,
            consent: serde_json::from_value(Value::String(self.consent.clone())).unwrap_or_default(),
        }
    }
}

const CONTACT_COLUMNS: &str = "c.id, c.phone_number, c.first_name, c.last_name, c.email, c.company, c.language, \
    c.timezone, c.timezones, c.custom_fields, c.tags, c.lists, c.max_attempts, c.do_not_call, c.consent, c.status, \
    c.attempts, c.last_attempt_at, c.last_outcome, c.import_id, c.version, c.created_at, c.updated_at";

pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<ContactRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CONTACT_COLUMNS} FROM {CONTACTS} c WHERE c.id = $1 AND c.tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}

pub async fn find_by_phone(pool: &PgPool, tenant: Uuid, phone: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM {CONTACTS} WHERE tenant_id = $1 AND phone_number = $2 LIMIT 1"
    ))
    .bind(tenant)
    .bind(phone)
    .fetch_optional(pool)
    .await
}

/// Which of these numbers the tenant already has as contacts, and which are on its
/// do-not-call list.
pub async fn known_numbers(
    pool: &PgPool,
    tenant: Uuid,
    phones: &[String],
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let existing = sqlx::query_scalar(&format!(
        "SELECT phone_number FROM {CONTACTS} WHERE tenant_id = $1 AND phone_number = ANY($2)"
    ))
    .bind(tenant)
    .bind(phones)
    .fetch_all(pool)
    .await?;
    let listed = sqlx::query_scalar(&format!(
        "SELECT phone_number FROM {DNC} WHERE tenant_id = $1 AND phone_number = ANY($2)"
    ))
    .bind(tenant)
    .bind(phones)
    .fetch_all(pool)
    .await?;
    Ok((existing, listed))
}

#[derive(Debug, Default, Clone)]
pub struct ContactQuery {
    pub search: Option<String>,
    pub status: Option<String>,
    pub tag: Option<String>,
    pub list: Option<String>,
    pub import_id: Option<Uuid>,
    pub do_not_call: Option<bool>,
}

pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    query: &ContactQuery,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<ContactRow>> {
    let mut q = QueryBuilder::new(format!("SELECT {CONTACT_COLUMNS} FROM {CONTACTS} c WHERE c.tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = query.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = crate::campaign::like(s);
        q.push(" AND (lower(coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')) LIKE ")
            .push_bind(pattern.clone())
            .push(" OR c.phone_number LIKE ")
            .push_bind(pattern.clone())
            .push(" OR lower(c.email) LIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(s) = &query.status {
        q.push(" AND c.status = ").push_bind(s.clone());
    }
    if let Some(s) = &query.tag {
        q.push(" AND c.tags @> ARRAY[").push_bind(s.to_lowercase()).push("]");
    }
    if let Some(s) = &query.list {
        q.push(" AND c.lists @> ARRAY[").push_bind(s.to_lowercase()).push("]");
    }
    if let Some(i) = query.import_id {
        q.push(" AND c.import_id = ").push_bind(i);
    }
    if let Some(d) = query.do_not_call {
        q.push(" AND c.do_not_call = ").push_bind(d);
    }
    crate::keyset::push_page(&mut q, "c.created_at", "c.id", after, false, limit)?;
    let rows: Vec<ContactRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}

/// `now` is inside the window in every zone the contact may be in.
fn push_in_window(q: &mut QueryBuilder<'_, Postgres>, settings: &CampaignSettings, now: DateTime<Utc>) {
    let (start, end, days) = settings.effective_window();
    let days: Vec<i32> = days.into_iter().map(i32::from).collect();
    q.push(" AND NOT EXISTS (SELECT 1 FROM unnest(c.timezones) z WHERE NOT ((")
        .push_bind(now)
        .push(" AT TIME ZONE z)::time >= ")
        .push_bind(start)
        .push(" AND (")
        .push_bind(now)
        .push(" AT TIME ZONE z)::time < ")
        .push_bind(end)
        .push(" AND extract(isodow FROM ")
        .push_bind(now)
        .push(" AT TIME ZONE z)::int = ANY(")
        .push_bind(days)
        .push(")))");
}

/// The call list's membership conditions (`c` = contact_view, `cc` = its campaign row).
fn push_filter(
    q: &mut QueryBuilder<'_, Postgres>,
    filter: &ContactFilter,
    settings: &CampaignSettings,
    now: DateTime<Utc>,
) {
    if !filter.tags_any.is_empty() {
        q.push(" AND c.tags && ").push_bind(filter.tags_any.clone());
    }
    if !filter.tags_all.is_empty() {
        q.push(" AND c.tags @> ").push_bind(filter.tags_all.clone());
    }
    if !filter.exclude_tags.is_empty() {
        q.push(" AND NOT (c.tags && ").push_bind(filter.exclude_tags.clone()).push(")");
    }
    if !filter.lists.is_empty() {
        q.push(" AND c.lists && ").push_bind(filter.lists.clone());
    }
    if !filter.fields.is_empty() {
        q.push(" AND c.custom_fields @> ").push_bind(Value::Object(filter.fields.clone()));
    }
    if let Some(n) = filter.max_attempts_below {
        q.push(" AND coalesce(cc.attempts, 0) < ").push_bind(n as i32);
    }
    if !filter.last_outcomes.is_empty() {
        q.push(" AND coalesce(cc.last_outcome, 'never') = ANY(")
            .push_bind(filter.last_outcomes.clone())
            .push(")");
    }
    if !filter.languages.is_empty() {
        q.push(" AND c.language = ANY(").push_bind(filter.languages.clone()).push(")");
    }
    if !filter.timezones.is_empty() {
        q.push(" AND c.timezone = ANY(").push_bind(filter.timezones.clone()).push(")");
    }
    if filter.callable_now {
        push_in_window(q, settings, now);
    }
}

/// `ORDER BY` the list's keys, after `lead` (e.g. due callbacks first).
fn push_order(q: &mut QueryBuilder<'_, Postgres>, lead: &str, order: &[SortKey]) {
    q.push(" ORDER BY ").push(lead);
    for key in order {
        let dir = match key.direction {
            Direction::Asc => " ASC NULLS FIRST, ",
            Direction::Desc => " DESC NULLS LAST, ",
        };
        match key.field.as_str() {
            "created_at" => {
                q.push("c.created_at");
            }
            "attempts" => {
                q.push("coalesce(cc.attempts, 0)");
            }
            "last_attempt_at" => {
                q.push("cc.last_attempt_at");
            }
            "last_name" => {
                q.push("lower(c.last_name)");
            }
            "first_name" => {
                q.push("lower(c.first_name)");
            }
            other => {
                let name = other.strip_prefix("custom.").unwrap_or(other).to_owned();
                // Numbers (also numbers imported as text) sort as numbers, the rest as text.
                q.push("CASE WHEN (c.custom_fields->>")
                    .push_bind(name.clone())
                    .push(") ~ '^-?[0-9]+(\\.[0-9]+)?$' THEN (c.custom_fields->>")
                    .push_bind(name.clone())
                    .push(")::numeric END")
                    .push(dir)
                    .push("c.custom_fields->>")
                    .push_bind(name);
            }
        }
        q.push(dir);
    }
    q.push("c.created_at, c.id");
}

fn base_query<'a>(tenant: Uuid, campaign: Uuid) -> QueryBuilder<'a, Postgres> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {CONTACT_COLUMNS}, coalesce(cc.attempts, 0) AS campaign_attempts, cc.last_outcome AS campaign_last_outcome, \
         cc.last_attempt_at AS campaign_last_attempt_at, cc.callback_at, cc.callback_note \
         FROM {CONTACTS} c LEFT JOIN {CAMPAIGN_CONTACTS} cc ON cc.contact_id = c.id AND cc.campaign_id = "
    ));
    q.push_bind(campaign).push(" WHERE c.tenant_id = ").push_bind(tenant);
    q
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberRow {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub contact: ContactRow,
    pub campaign_attempts: i32,
    pub campaign_last_outcome: Option<String>,
    pub campaign_last_attempt_at: Option<DateTime<Utc>>,
    /// A callback the person asked for (the dialer calls them then, first).
    pub callback_at: Option<DateTime<Utc>>,
    pub callback_note: Option<String>,
}

pub struct CallListQuery<'a> {
    pub tenant: Uuid,
    pub campaign: Uuid,
    pub settings: &'a CampaignSettings,
    pub filter: &'a ContactFilter,
    pub order: &'a [SortKey],
    pub now: DateTime<Utc>,
}

/// The contacts a call list holds, in its dialing order (offset pages: the order is the list's).
pub async fn members(
    pool: &PgPool,
    l: &CallListQuery<'_>,
    offset: i64,
    limit: i64,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    let mut q = base_query(l.tenant, l.campaign);
    push_filter(&mut q, l.filter, l.settings, l.now);
    push_order(&mut q, "", l.order);
    q.push(" OFFSET ").push_bind(offset).push(" LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

/// Every rule a dial must pass, on top of the list's filter: not on the contact's or the
/// tenant's do-not-call list, consent not denied, not being called now, attempts below the
/// contact's and the campaign's maximum, not already connected by this campaign, the retry
/// delay for the last outcome passed, not abandoned within 72 h, and inside the calling window
/// in every zone the contact may be in.
fn push_dialable(q: &mut QueryBuilder<'_, Postgres>, settings: &CampaignSettings, now: DateTime<Utc>) {
    let d = &settings.retry_delays;
    q.push(" AND NOT c.do_not_call AND c.consent <> 'denied' AND c.status <> 'calling'");
    q.push(format!(
        " AND NOT EXISTS (SELECT 1 FROM {DNC} d WHERE d.tenant_id = c.tenant_id AND d.phone_number = c.phone_number)"
    ));
    // A callback the person asked for waits for its time, then goes past the attempt limit
    // and the retry delays (not past the calling window).
    q.push(" AND (cc.callback_at IS NULL OR cc.callback_at <= ").push_bind(now).push(")");
    q.push(" AND (cc.callback_at IS NOT NULL OR coalesce(cc.attempts, 0) < least(c.max_attempts, ")
        .push_bind(settings.max_attempts as i32)
        .push("))");
    q.push(" AND NOT coalesce(cc.done, false) AND NOT coalesce(cc.in_flight, false)");
    q.push(
        " AND (cc.callback_at IS NOT NULL OR cc.last_attempt_at IS NULL OR cc.last_attempt_at + make_interval(mins => CASE cc.last_outcome",
    )
    .push(" WHEN 'no_answer' THEN ")
    .push_bind(d.no_answer as i32)
    .push(" WHEN 'busy' THEN ")
    .push_bind(d.busy as i32)
    .push(" WHEN 'voicemail' THEN ")
    .push_bind(d.voicemail as i32)
    .push(" WHEN 'abandoned' THEN ")
    .push_bind(d.abandoned as i32)
    .push(" ELSE ")
    .push_bind(d.failed as i32)
    .push(" END) <= ")
    .push_bind(now)
    .push(")");
    q.push(" AND NOT coalesce(c.last_outcome = 'abandoned' AND c.last_attempt_at > ")
        .push_bind(now)
        .push(" - interval '72 hours', false)");
    push_in_window(q, settings, now);
}

/// The next contacts to dial from a call list, best first.
pub async fn next_to_dial(
    pool: &PgPool,
    l: &CallListQuery<'_>,
    limit: i64,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    let mut q = base_query(l.tenant, l.campaign);
    push_filter(&mut q, l.filter, l.settings, l.now);
    push_dialable(&mut q, l.settings, l.now);
    push_order(&mut q, "cc.callback_at ASC NULLS LAST, ", l.order);
    q.push(" LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

/// How many contacts a call list holds, and how many of them could be dialed now or later
/// (everything but the calling window and retry delays).
pub async fn count_members(pool: &PgPool, l: &CallListQuery<'_>) -> Result<(i64, i64), sqlx::Error> {
    let mut q = QueryBuilder::new(format!(
        "SELECT count(*), count(*) FILTER (WHERE NOT c.do_not_call AND c.consent <> 'denied' \
           AND NOT EXISTS (SELECT 1 FROM {DNC} d WHERE d.tenant_id = c.tenant_id AND d.phone_number = c.phone_number) \
           AND (cc.callback_at IS NOT NULL OR coalesce(cc.attempts, 0) < least(c.max_attempts, "
    ));
    q.push_bind(l.settings.max_attempts as i32);
    q.push(format!(
        ")) AND NOT coalesce(cc.done, false)) FROM {CONTACTS} c LEFT JOIN {CAMPAIGN_CONTACTS} cc ON cc.contact_id = c.id AND cc.campaign_id = "
    ));
    q.push_bind(l.campaign).push(" WHERE c.tenant_id = ").push_bind(l.tenant);
    push_filter(&mut q, l.filter, l.settings, l.now);
    q.build_query_as().fetch_one(pool).await
}

/// Per-campaign contact progress: contacts attempted, connected, finished.
pub async fn campaign_progress(pool: &PgPool, campaign: Uuid) -> Result<(i64, i64, i64), sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT count(*), count(*) FILTER (WHERE done), count(*) FILTER (WHERE in_flight) \
         FROM {CAMPAIGN_CONTACTS} WHERE campaign_id = $1"
    ))
    .bind(campaign)
    .fetch_one(pool)
    .await
}
