//! `ivr_visit_view`: every node a call entered in an IVR flow, when it left and by which exit,
//! and where the flow ended — from the calls' `IvrStepTaken` events. Flow analytics
//! ([`analytics`]) count it: visits, exits per option, drop-off and median time per node,
//! completion.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kraliki_domain::call::CallEvent;
use kraliki_domain::ivr::{EndReason, IvrStep};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::event::StoredEvent;
use crate::filter::EventFilter;
use crate::projection::{BuildTables, Projection};

pub const NAME: &str = "ivr_visit_view";
const VISITS: &str = "ivr_visit_view";

pub struct IvrVisitProjection;

#[async_trait]
impl Projection for IvrVisitProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[VISITS]
    }

    fn reads(&self) -> Option<EventFilter> {
        Some(EventFilter::events("Call", &["IvrStepTaken"]))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        t: &BuildTables,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        for e in events.iter().filter(|e| e.aggregate_type == "Call" && e.event_type == "IvrStepTaken") {
            let CallEvent::IvrStepTaken { flow_id, version, step, at } = e.decode()? else { continue };
            let call: Uuid = e.aggregate_id.parse()?;
            visit(conn, t.get(VISITS), e, call, (flow_id, version), step, at).await?;
        }
        Ok(())
    }
}

/// The stable word for how a flow ended.
pub fn end_reason(reason: &EndReason) -> &'static str {
    match reason {
        EndReason::Completed { .. } => "completed",
        EndReason::Transferred { .. } => "transferred",
        EndReason::VoicemailLeft { .. } => "voicemail_left",
        EndReason::CallerHungUp { .. } => "caller_hung_up",
        EndReason::Error { .. } => "error",
        EndReason::VisitLimit { .. } => "visit_limit",
    }
}

async fn visit(
    conn: &mut PgConnection,
    table: &str,
    e: &StoredEvent,
    call: Uuid,
    (flow_id, version): (Uuid, u32),
    step: IvrStep,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    // The call's current visit: the last one entered.
    let current = format!("(SELECT max(visit) FROM {table} WHERE call_id = $1)");
    match step {
        IvrStep::NodeEntered { node_id, node_type, visit } => {
            sqlx::query(&format!(
                "UPDATE {table} SET left_at = $2 WHERE call_id = $1 AND visit = {current} AND left_at IS NULL"
            ))
            .bind(call)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            let node_type = serde_json::to_value(node_type)?.as_str().unwrap_or_default().to_owned();
            // A replay of the same event finds its row.
            sqlx::query(&format!(
                "INSERT INTO {table} (call_id, visit, tenant_id, flow_id, version, node_id, node_type, entered_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (call_id, visit) DO NOTHING"
            ))
            .bind(call)
            .bind(i32::try_from(visit)?)
            .bind(e.tenant()?)
            .bind(flow_id)
            .bind(i32::try_from(version)?)
            .bind(node_id)
            .bind(node_type)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        IvrStep::BranchTaken { branch, .. } => {
            sqlx::query(&format!("UPDATE {table} SET branch = $2 WHERE call_id = $1 AND visit = {current}"))
                .bind(call)
                .bind(branch)
                .execute(&mut *conn)
                .await?;
        }
        IvrStep::FlowEnded { reason } => {
            sqlx::query(&format!(
                "UPDATE {table} SET end_reason = $2, left_at = coalesce(left_at, $3) \
                 WHERE call_id = $1 AND visit = {current}"
            ))
            .bind(call)
            .bind(end_reason(&reason))
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

// Queries ---------------------------------------------------------------------------------

/// What analytics count: a flow's visits in a period, optionally one version.
#[derive(Debug, Clone, Default)]
pub struct AnalyticsFilter {
    pub version: Option<i32>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One node's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeFigures {
    pub node_id: String,
    pub node_type: String,
    /// Times a call entered it.
    pub visits: i64,
    /// Calls that entered it.
    pub calls: i64,
    /// Exit → times taken (`option:1`, `next`, `true`, `timeout`, `error`, …).
    pub exits: BTreeMap<String, i64>,
    /// Calls whose caller hung up here.
    pub drop_offs: i64,
    /// `drop_offs / calls`.
    pub drop_off_rate: f64,
    /// Median time spent here per visit (seconds; none: nobody has left it yet).
    pub median_seconds: Option<f64>,
}

/// A flow's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowFigures {
    pub flow_id: Uuid,
    pub version: Option<i32>,
    /// Calls that entered the flow.
    pub calls: i64,
    /// How the flow ended → calls (`completed`, `transferred`, `voicemail_left`,
    /// `caller_hung_up`, `error`, `visit_limit`); calls still in it are not counted.
    pub outcomes: BTreeMap<String, i64>,
    /// Calls that ended by an `end_call`, a transfer or a voicemail, over all that entered.
    pub completion_rate: f64,
    /// Calls still in the flow.
    pub in_progress: i64,
    /// Every node a call entered, in the order first entered.
    pub nodes: Vec<NodeFigures>,
}

#[derive(sqlx::FromRow)]
struct NodeRow {
    node_id: String,
    node_type: String,
    visits: i64,
    calls: i64,
    drop_offs: i64,
    median_seconds: Option<f64>,
}

fn push_filter(
    q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
    tenant: Uuid,
    flow: Uuid,
    f: &AnalyticsFilter,
) {
    q.push(" WHERE flow_id = ").push_bind(flow).push(" AND tenant_id = ").push_bind(tenant);
    if let Some(v) = f.version {
        q.push(" AND version = ").push_bind(v);
    }
    if let Some(from) = f.from {
        q.push(" AND entered_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND entered_at < ").push_bind(to);
    }
}

/// The flow's figures from its visits.
pub async fn analytics(
    pool: &PgPool,
    tenant: Uuid,
    flow: Uuid,
    filter: &AnalyticsFilter,
) -> Result<FlowFigures, sqlx::Error> {
    let mut q = sqlx::QueryBuilder::new(format!(
        "SELECT node_id, min(node_type) AS node_type, count(*) AS visits, count(DISTINCT call_id) AS calls, \
         count(DISTINCT call_id) FILTER (WHERE end_reason = 'caller_hung_up') AS drop_offs, \
         (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at)) \
            FILTER (WHERE left_at IS NOT NULL))::float8 AS median_seconds, \
         min(entered_at) AS first FROM {VISITS}"
    ));
    push_filter(&mut q, tenant, flow, filter);
    q.push(" GROUP BY node_id ORDER BY first, node_id");
    let rows: Vec<NodeRow> = q.build_query_as().fetch_all(pool).await?;

    let mut q = sqlx::QueryBuilder::new(format!("SELECT node_id, branch, count(*) FROM {VISITS}"));
    push_filter(&mut q, tenant, flow, filter);
    q.push(" AND branch IS NOT NULL GROUP BY node_id, branch");
    let exits: Vec<(String, String, i64)> = q.build_query_as().fetch_all(pool).await?;

    // Per call: how its flow ended (null: still in it), from the visit that ended it.
    let mut q = sqlx::QueryBuilder::new(format!(
        "SELECT coalesce(max(end_reason), 'in_progress'), count(*) FROM (SELECT call_id, max(end_reason) AS end_reason FROM {VISITS}"
    ));
    push_filter(&mut q, tenant, flow, filter);
    q.push(" GROUP BY call_id) calls GROUP BY end_reason");
    let ends: Vec<(String, i64)> = q.build_query_as().fetch_all(pool).await?;

    let mut outcomes: BTreeMap<String, i64> = BTreeMap::new();
    let mut in_progress = 0;
    for (reason, n) in ends {
        if reason == "in_progress" {
            in_progress += n;
        } else {
            *outcomes.entry(reason).or_default() += n;
        }
    }
    let calls: i64 = outcomes.values().sum::<i64>() + in_progress;
    let completed: i64 =
        ["completed", "transferred", "voicemail_left"].iter().filter_map(|k| outcomes.get(*k)).sum();
    let ratio = |n: i64, of: i64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    let nodes = rows
        .into_iter()
        .map(|r| NodeFigures {
            exits: exits
                .iter()
                .filter(|(n, _, _)| *n == r.node_id)
                .map(|(_, b, c)| (b.clone(), *c))
                .collect(),
            drop_off_rate: ratio(r.drop_offs, r.calls),
            node_id: r.node_id,
            node_type: r.node_type,
            visits: r.visits,
            calls: r.calls,
            drop_offs: r.drop_offs,
            median_seconds: r.median_seconds,
        })
        .collect();
    Ok(FlowFigures {
        flow_id: flow,
        version: filter.version,
        calls,
        completion_rate: ratio(completed, calls),
        outcomes,
        in_progress,
        nodes,
    })
}
