//! The agents' read models: `agent_view` (profile, current state, since when, live offer and
//! calls) and `agent_state_view` (every state change, the auditors' timeline).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::agent::{AgentEvent, AgentProfile, AgentState};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::company::{Cursor, Page};
use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "agent_view";
const AGENTS: &str = "agent_view";
const STATES: &str = "agent_state_view";

pub struct AgentProjection;

#[async_trait]
impl Projection for AgentProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        // 2: last call, calls and occupancy today (the router's inputs).
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[AGENTS, STATES]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::aggregates(&["Agent"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "Agent") {
            agent(conn, t, e).await?;
        }
        Ok(())
    }
}

/// What a state-bearing event changes besides the state itself.
#[derive(Default)]
struct Change {
    /// `Some(r)`: the event sets the reason; `None`: kept unless the state changes.
    reason: Option<Option<String>>,
    missed: Option<i32>,
    active_calls: Option<i32>,
    /// `Some(o)`: the live offer becomes `o`.
    offer: Option<Option<Value>>,
    call_id: Option<Uuid>,
    offer_id: Option<Uuid>,
    /// A call connected (counts as answered today).
    call_connected: bool,
    /// A call ended (the agent's last call).
    call_ended: bool,
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

async fn agent(conn: &mut PgConnection, t: &BuildTables, e: &StoredEvent) -> anyhow::Result<()> {
    let table = t.get(AGENTS);
    let id: Uuid = e.aggregate_id.parse()?;
    let seq = e.sequence;
    let event = e.decode::<AgentEvent>()?;
    let (state, from, at) = (event.state(), event.from(), event.at());
    let event_type = cqrs_es::DomainEvent::event_type(&event);
    let mut change = Change::default();
    match event {
        AgentEvent::AgentCreated { profile, at, .. } => {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, tenant_id, user_id, display_name, profile, state, state_since, version, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $7) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(id)
            .bind(e.tenant()?)
            .bind(profile.user_id)
            .bind(&profile.display_name)
            .bind(serde_json::to_value(&profile)?)
            .bind(state.as_str())
            .bind(at)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
            return timeline(conn, t, e, id, &event_type, from, state, &change, at).await;
        }
        AgentEvent::AgentUpdated { profile, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET display_name = $2, profile = $3, version = $4, updated_at = $5 WHERE id = $1"
            ))
            .bind(id)
            .bind(&profile.display_name)
            .bind(serde_json::to_value(&profile)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        AgentEvent::AgentSkillsSet { skills, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET profile = jsonb_set(profile, '{{skills}}', $2), version = $3, updated_at = $4 \
                 WHERE id = $1"
            ))
            .bind(id)
            .bind(serde_json::to_value(&skills)?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        AgentEvent::AgentSkillRemoved { skill, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {table} SET profile = profile #- ARRAY['skills', $2], version = $3, updated_at = $4 \
                 WHERE id = $1"
            ))
            .bind(id)
            .bind(skill)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        AgentEvent::AgentDeleted { at, .. } => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *conn).await?;
            return timeline(conn, t, e, id, &event_type, from, state, &change, at).await;
        }
        AgentEvent::AgentStateChanged { reason, .. } => change.reason = Some(reason),
        AgentEvent::AgentAutoPaused { reason, .. } => {
            change.reason = Some(Some(reason));
            change.missed = Some(0);
        }
        AgentEvent::AgentReserved { offer_id, call_id, queue_id, expires_at, at, .. } => {
            change.offer = Some(Some(serde_json::json!({
                "offer_id": offer_id, "call_id": call_id, "queue_id": queue_id,
                "offered_at": at, "expires_at": expires_at,
            })));
            (change.call_id, change.offer_id) = (Some(call_id), Some(offer_id));
        }
        AgentEvent::AgentOfferAccepted { offer_id, call_id, .. } => {
            change.offer = Some(None);
            change.missed = Some(0);
            (change.call_id, change.offer_id) = (Some(call_id), Some(offer_id));
        }
        AgentEvent::AgentOfferRejected { offer_id, call_id, missed_in_a_row, reason, .. } => {
            change.offer = Some(None);
            change.missed = Some(count(missed_in_a_row));
            change.reason = reason.map(Some);
            (change.call_id, change.offer_id) = (Some(call_id), Some(offer_id));
        }
        AgentEvent::AgentOfferExpired { offer_id, call_id, missed_in_a_row, .. } => {
            change.offer = Some(None);
            change.missed = Some(count(missed_in_a_row));
            (change.call_id, change.offer_id) = (Some(call_id), Some(offer_id));
        }
        AgentEvent::AgentOfferCancelled { offer_id, call_id, .. } => {
            change.offer = Some(None);
            (change.call_id, change.offer_id) = (Some(call_id), Some(offer_id));
        }
        AgentEvent::AgentCallConnected { call_id, offer_id, active_calls, .. } => {
            change.active_calls = Some(count(active_calls));
            change.call_connected = true;
            (change.call_id, change.offer_id) = (Some(call_id), offer_id);
        }
        AgentEvent::AgentCallEnded { call_id, offer_id, active_calls, .. } => {
            change.active_calls = Some(count(active_calls));
            change.call_ended = true;
            (change.call_id, change.offer_id) = (Some(call_id), offer_id);
        }
        AgentEvent::AgentWrapUpEnded { call_id, .. } => change.call_id = call_id,
    }
    // A rejection's reason is the offer's, not the state's.
    let state_reason =
        if matches!(event_type.as_str(), "AgentOfferRejected") { None } else { change.reason.clone() };
    sqlx::query(&format!(
        "UPDATE {table} SET \
           state_since = CASE WHEN state <> $2 THEN $3 ELSE state_since END, \
           reason = CASE WHEN $4 THEN $5 WHEN state <> $2 THEN NULL ELSE reason END, \
           available_since = CASE WHEN $2 = 'available' THEN \
               (CASE WHEN state = 'available' THEN COALESCE(available_since, $3) ELSE $3 END) ELSE NULL END, \
           state = $2, \
           missed_in_a_row = COALESCE($6, missed_in_a_row), \
           active_calls = COALESCE($7, active_calls), \
                      offer = CASE WHEN $8 THEN $9 ELSE offer END, \
           last_call_ended_at = CASE WHEN $11 THEN $3 ELSE last_call_ended_at END, \
           day = $12, \
           calls_today = CASE WHEN day IS DISTINCT FROM $12 THEN 0 ELSE calls_today END + $13, \
           handle_ms_today = CASE WHEN day IS DISTINCT FROM $12 THEN 0 ELSE handle_ms_today END \
               + CASE WHEN state <> $2 AND state IN ('on_call', 'wrap_up') THEN {elapsed} ELSE 0 END, \
           staffed_ms_today = CASE WHEN day IS DISTINCT FROM $12 THEN 0 ELSE staffed_ms_today END \
               + CASE WHEN state <> $2 AND state IN ('available', 'reserved', 'on_call', 'wrap_up') \
                 THEN {elapsed} ELSE 0 END, \
           version = $10, updated_at = $3 \
         WHERE id = $1",
        elapsed = "GREATEST(0, extract(epoch FROM ($3 - state_since)) * 1000)::bigint"
    ))
    .bind(id)
    .bind(state.as_str())
    .bind(at)
    .bind(state_reason.is_some())
    .bind(state_reason.flatten())
    .bind(change.missed)
    .bind(change.active_calls)
    .bind(change.offer.is_some())
    .bind(change.offer.clone().flatten())
    .bind(seq)
    .bind(change.call_ended)
    .bind(at.date_naive())
    .bind(i32::from(change.call_connected))
    .execute(&mut *conn)
    .await?;
    timeline(conn, t, e, id, &event_type, from, state, &change, at).await
}

#[allow(clippy::too_many_arguments)]
async fn timeline(
    conn: &mut PgConnection,
    t: &BuildTables,
    e: &StoredEvent,
    id: Uuid,
    event_type: &str,
    from: AgentState,
    state: AgentState,
    change: &Change,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {} (agent_id, seq, tenant_id, event_type, from_state, state, reason, call_id, offer_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        t.get(STATES)
    ))
    .bind(id)
    .bind(e.sequence)
    .bind(e.tenant()?)
    .bind(event_type)
    .bind(from.as_str())
    .bind(state.as_str())
    .bind(change.reason.clone().flatten())
    .bind(change.call_id)
    .bind(change.offer_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub profile: Value,
    pub state: String,
    pub reason: Option<String>,
    pub state_since: DateTime<Utc>,
    pub available_since: Option<DateTime<Utc>>,
    pub missed_in_a_row: i32,
    pub active_calls: i32,
    pub offer: Option<Value>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_call_ended_at: Option<DateTime<Utc>>,
    /// The UTC day the `*_today` figures are of.
    pub day: Option<chrono::NaiveDate>,
    pub calls_today: i32,
    pub handle_ms_today: i64,
    pub staffed_ms_today: i64,
}

impl AgentRow {
    pub fn profile(&self) -> anyhow::Result<AgentProfile> {
        Ok(serde_json::from_value(self.profile.clone())?)
    }

    pub fn state(&self) -> AgentState {
        AgentState::parse(&self.state).unwrap_or_default()
    }
}

const COLUMNS: &str =
    "id, tenant_id, user_id, display_name, profile, state, reason, state_since, available_since, \
        missed_in_a_row, active_calls, offer, version, created_at, updated_at, last_call_ended_at, day, calls_today, \
    handle_ms_today, staffed_ms_today";

pub async fn get(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<AgentRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM {AGENTS} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// The tenant's agent for a user, if any.
pub async fn for_user(pool: &PgPool, tenant: Uuid, user: Uuid) -> Result<Option<AgentRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {AGENTS} WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at LIMIT 1"
    ))
    .bind(tenant)
    .bind(user)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, Default, Clone)]
pub struct AgentFilter {
    /// In this state.
    pub state: Option<String>,
    /// Member of this team.
    pub team_id: Option<Uuid>,
    /// Has this skill.
    pub skill: Option<String>,
    /// Name contains (case-insensitive).
    pub search: Option<String>,
}

/// Newest first.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    filter: &AgentFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> anyhow::Result<Page<AgentRow>> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM {AGENTS} WHERE tenant_id = "));
    q.push_bind(tenant);
    if let Some(s) = &filter.state {
        q.push(" AND state = ").push_bind(s.clone());
    }
    if let Some(team) = filter.team_id {
        q.push(" AND profile->'team_ids' ? ").push_bind(team.to_string());
    }
    if let Some(skill) = &filter.skill {
        q.push(" AND profile->'skills' ? ").push_bind(skill.clone());
    }
    if let Some(s) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        q.push(" AND lower(display_name) LIKE ").push_bind(crate::campaign::like(s));
    }
    crate::keyset::push_page(&mut q, "created_at", "id", after, true, limit)?;
    let rows: Vec<AgentRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::keyset::page(rows, limit, |r| (r.created_at, r.id)))
}

/// One state change.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateChangeRow {
    /// The agent stream's sequence number of the event.
    pub seq: i64,
    /// `AgentStateChanged`, `AgentReserved`, `AgentAutoPaused`, …
    pub event_type: String,
    /// The state before.
    pub from_state: String,
    /// The state after.
    pub state: String,
    /// The reason code (break and away reasons, `missed_offers`).
    pub reason: Option<String>,
    pub call_id: Option<Uuid>,
    pub offer_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// An agent's timeline in stream order, after sequence `after`; the next page's cursor is the
/// last sequence number.
pub async fn states(
    pool: &PgPool,
    tenant: Uuid,
    agent: Uuid,
    after: i64,
    limit: i64,
) -> Result<(Vec<StateChangeRow>, Option<String>), sqlx::Error> {
    let mut rows: Vec<StateChangeRow> = sqlx::query_as(&format!(
        "SELECT seq, event_type, from_state, state, reason, call_id, offer_id, at FROM {STATES} \
         WHERE tenant_id = $1 AND agent_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
    ))
    .bind(tenant)
    .bind(agent)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| r.seq.to_string()) } else { None };
    Ok((rows, next))
}

/// An agent's figures over a period, from the timeline alone (never from counters kept by hand).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentFigures {
    pub agent_id: Uuid,
    /// Offers made (`AgentReserved`).
    pub offers: i64,
    /// Offers accepted.
    pub accepted: i64,
    /// Offers declined.
    pub rejected: i64,
    /// Offers that timed out.
    pub missed: i64,
    /// Offers withdrawn (not the agent's doing).
    pub cancelled: i64,
    /// Automatic pauses after missed offers.
    pub auto_pauses: i64,
    /// Calls that ended for the agent.
    pub calls_handled: i64,
    /// Milliseconds in each state within the period.
    pub state_ms: std::collections::BTreeMap<String, i64>,
}

impl AgentFigures {
    fn ms(&self, states: &[&str]) -> i64 {
        states.iter().map(|s| self.state_ms.get(*s).copied().unwrap_or(0)).sum()
    }

    /// Any state but offline.
    pub fn logged_in_ms(&self) -> i64 {
        self.state_ms.iter().filter(|(s, _)| s.as_str() != "offline").map(|(_, ms)| ms).sum()
    }

    /// Time on calls.
    pub fn talk_ms(&self) -> i64 {
        self.ms(&["on_call"])
    }

    /// After-call work.
    pub fn wrap_up_ms(&self) -> i64 {
        self.ms(&["wrap_up"])
    }

    /// Time ready for or busy with calls: available, reserved, on_call, wrap_up.
    pub fn staffed_ms(&self) -> i64 {
        self.ms(&["available", "reserved", "on_call", "wrap_up"])
    }

    /// Adds another agent's figures (a team's).
    pub fn add(&mut self, other: &Self) {
        self.offers += other.offers;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.missed += other.missed;
        self.cancelled += other.cancelled;
        self.auto_pauses += other.auto_pauses;
        self.calls_handled += other.calls_handled;
        for (s, ms) in &other.state_ms {
            *self.state_ms.entry(s.clone()).or_insert(0) += ms;
        }
    }
}

/// Figures of each of `agents` between `from` and `until` (each state lasts until the next
/// change; the last one until `until`).
pub async fn figures(
    pool: &PgPool,
    tenant: Uuid,
    agents: &[Uuid],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<AgentFigures>, sqlx::Error> {
    let times: Vec<(Uuid, String, i64)> = sqlx::query_as(&format!(
        "WITH t AS (SELECT agent_id, state, at, lead(at) OVER (PARTITION BY agent_id ORDER BY seq) AS next \
                    FROM {STATES} WHERE tenant_id = $1 AND agent_id = ANY($2) AND at < $4) \
         SELECT agent_id, state, COALESCE(sum(EXTRACT(EPOCH FROM (LEAST(COALESCE(next, $4), $4) - GREATEST(at, $3))) \
                * 1000), 0)::bigint FROM t WHERE COALESCE(next, $4) > $3 GROUP BY agent_id, state"
    ))
    .bind(tenant)
    .bind(agents)
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    let counts: Vec<(Uuid, String, i64)> = sqlx::query_as(&format!(
        "SELECT agent_id, event_type, count(*) FROM {STATES} WHERE tenant_id = $1 AND agent_id = ANY($2) \
         AND at >= $3 AND at < $4 GROUP BY agent_id, event_type"
    ))
    .bind(tenant)
    .bind(agents)
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<AgentFigures> =
        agents.iter().map(|a| AgentFigures { agent_id: *a, ..AgentFigures::default() }).collect();
    for (agent, state, ms) in times {
        if let Some(f) = out.iter_mut().find(|f| f.agent_id == agent) {
            f.state_ms.insert(state, ms);
        }
    }
    for (agent, event_type, n) in counts {
        let Some(f) = out.iter_mut().find(|f| f.agent_id == agent) else { continue };
        match event_type.as_str() {
            "AgentReserved" => f.offers += n,
            "AgentOfferAccepted" => f.accepted += n,
            "AgentOfferRejected" => f.rejected += n,
            "AgentOfferExpired" => f.missed += n,
            "AgentOfferCancelled" => f.cancelled += n,
            "AgentAutoPaused" => f.auto_pauses += n,
            "AgentCallEnded" => f.calls_handled += n,
            _ => {}
        }
    }
    Ok(out)
}

/// The ids of a team's agents (those whose profile names the team).
pub async fn team_agents(pool: &PgPool, tenant: Uuid, team: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM {AGENTS} WHERE tenant_id = $1 AND profile->'team_ids' ? $2 ORDER BY created_at, id"
    ))
    .bind(tenant)
    .bind(team.to_string())
    .fetch_all(pool)
    .await
}

/// The agents `ids` of the tenant (any order; unknown ids are left out).
pub async fn rows(pool: &PgPool, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<AgentRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM {AGENTS} WHERE tenant_id = $1 AND id = ANY($2)"))
        .bind(tenant)
        .bind(ids)
        .fetch_all(pool)
        .await
}

impl AgentRow {
    /// The agent as a routing candidate at `now`: `member_index` in the queue's order,
    /// `offered` when a call's pending offer names them (decided, maybe not reserved yet).
    /// Today's figures count only on the same UTC day; occupancy adds the current state's time.
    pub fn candidate(
        &self,
        member_index: usize,
        now: DateTime<Utc>,
        offered: bool,
    ) -> anyhow::Result<kraliki_domain::routing::Candidate> {
        let profile = self.profile()?;
        let state = self.state();
        let today = self.day == Some(now.date_naive());
        let (mut handle, mut staffed) =
            if today { (self.handle_ms_today, self.staffed_ms_today) } else { (0, 0) };
        let current = if today || self.state_since.date_naive() == now.date_naive() {
            (now - self.state_since).num_milliseconds().max(0)
        } else {
            (now - now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()).num_milliseconds().max(0)
        };
        match state {
            AgentState::OnCall | AgentState::WrapUp => {
                (handle, staffed) = (handle + current, staffed + current)
            }
            AgentState::Available | AgentState::Reserved => staffed += current,
            _ => {}
        }
        let occupancy = if staffed > 0 { handle as f64 / staffed as f64 } else { 0.0 };
        Ok(kraliki_domain::routing::Candidate {
            agent_id: self.id,
            state,
            capacity: profile.capacity,
            active_calls: u32::try_from(self.active_calls).unwrap_or(0),
            has_offer: offered || self.offer.is_some(),
            rejected_this_call: false,
            skills: profile.skills,
            languages: profile.languages,
            last_call_ended_at: self.last_call_ended_at,
            available_since: self.available_since,
            calls_answered_today: if today { u32::try_from(self.calls_today).unwrap_or(0) } else { 0 },
            occupancy,
            rating: profile.rating,
            attributes: profile.attributes,
            member_index,
        })
    }
}
