//! The dialer: a process manager that places the calls of every active campaign that dials by
//! itself. Progressive and predictive campaigns are dialed; a preview campaign waits for an
//! agent's click (`POST /api/v1/calls/outbound`), an inbound one never dials.
//!
//! When: a campaign's round is a timer, `campaign:<id>`. Starting or resuming a campaign, a call
//! of it ending (a line is free) and a callback coming due set it to now; every round sets it
//! again `tick` later while the campaign is active (calling windows open, retry delays pass,
//! the hourly cap moves on); pausing or ending the campaign removes it. Nothing sleeps.
//!
//! A round, for one campaign inside its start and end time:
//! - room = `max_concurrent_calls` − calls in flight, and at most `calls_per_hour` − calls
//!   started in the last hour, counted once the read models hold everything written so far;
//! - the next contacts of its call lists, in list order and each list's own order (due
//!   callbacks first; calling window in every zone, do-not-call, attempts, retry delays — the
//!   `next` query), without repeats;
//! - each placed by the calls service, which checks do-not-call and the window again and
//!   records the request before the carrier is asked. The request's idempotency key is the
//!   round's (`dialer:timer:campaign:<id>@<due>:<n>`) and the call's id is derived from it, so
//!   a round fired again after a crash finds its calls requested and dials nobody twice.
//!
//! A call requested but never taken by the carrier (the server died in between) is failed by
//! the timer `placing:<call>` a minute later; the contact is retried by its retry rules.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use kraliki_commands::{Cause, Effects, ManagerEnv, ProcessManager, Timer};
use kraliki_domain::call::{Call, CallCommand, CallEvent, CallStatus};
use kraliki_domain::call_list::{ContactFilter, SortKey};
use kraliki_domain::campaign::{CampaignEvent, CampaignSettings, DialingMode};
use kraliki_projections::campaign::{self, CampaignRow};
use kraliki_projections::contact::{self, CallListQuery, MemberRow};
use kraliki_projections::metrics_catalog as catalog;
use kraliki_projections::{call, position, EventFilter, StoredEvent};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::calls::{CallService, Callee, CallsError, Dial};

pub const NAME: &str = "dialer";

/// How long a requested call may wait for its carrier before it is failed.
const PLACING_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

pub struct Dialer {
    calls: CallService,
    /// Between two rounds of an active campaign.
    tick: Duration,
}

impl Dialer {
    pub fn new(calls: CallService, tick: Duration) -> Self {
        Self { calls, tick }
    }

    /// One round for every active campaign now (operators and tests drive it by hand);
    /// `cause` must be unique to this round. Returns how many calls were placed.
    pub async fn round_now(&self, env: &ManagerEnv, cause: &str) -> anyhow::Result<usize> {
        let mut placed = 0;
        for row in campaign::active(&env.pool).await? {
            let mut effects = Effects::new(
                env,
                NAME,
                Cause::adhoc(format!("{cause}:{}", row.id), row.tenant_id.to_string()),
            );
            placed += self.round(&mut effects, row.tenant_id, row.id).await?;
            effects.save_timers().await?;
        }
        Ok(placed)
    }

    /// One campaign's round; returns how many calls were placed. Counted by its outcome
    /// (`kraliki_dialer_rounds_total`).
    async fn round(
        &self,
        effects: &mut Effects<'_>,
        tenant: Uuid,
        campaign_id: Uuid,
    ) -> anyhow::Result<usize> {
        let round = self.dial_round(effects, tenant, campaign_id).await;
        let outcome = round.as_ref().map_or("failed", Round::outcome);
        metrics::counter!(catalog::DIALER_ROUNDS.name, "outcome" => outcome).increment(1);
        round.map(|r| r.placed)
    }

    async fn dial_round(
        &self,
        effects: &mut Effects<'_>,
        tenant: Uuid,
        campaign_id: Uuid,
    ) -> anyhow::Result<Round> {
        if !self.calls.can_dial() {
            return Ok(Round::idle("no_carrier")); // no carrier to dial through
        }
        let pool = effects.pool().clone();
        let Some(row) = campaign::get(&pool, tenant, campaign_id).await? else {
            return Ok(Round::idle("not_dialing"));
        };
        let settings = match row.settings() {
            Ok(settings) => settings,
            Err(error) => {
                tracing::warn!(campaign = %row.id, %error, "campaign settings unreadable; not dialed");
                return Ok(Round::idle("not_dialing"));
            }
        };
        if !dials_now(&row, &settings) {
            return Ok(Round::idle("not_dialing"));
        }
        // Count only once every call written so far (by any server) is in the read models.
        let head: Option<i64> =
            sqlx::query_scalar("SELECT max(global_position) FROM events").fetch_one(&pool).await?;
        if let Some(head) = head {
            let env = effects.env();
            for name in [
                campaign::NAME,
                contact::NAME,
                call::NAME,
                kraliki_projections::call_list::NAME,
                kraliki_projections::do_not_call::NAME,
            ] {
                position::wait_for(&pool, &env.wake, name, head, env.read_wait).await?;
            }
        }
        let Some(row) = campaign::get(&pool, row.tenant_id, row.id).await?.filter(CampaignRow::is_active)
        else {
            return Ok(Round::idle("not_dialing"));
        };
        let started = call::started_since(&pool, row.id, Utc::now() - chrono::Duration::hours(1)).await?;
        let room = (i64::from(settings.max_concurrent_calls) - i64::from(row.calls_in_flight))
            .min(i64::from(settings.calls_per_hour) - started);
        if room <= 0 {
            return Ok(Round::idle("no_room"));
        }
        let mut picked: Vec<MemberRow> = Vec::new();
        for list in kraliki_projections::call_list::call_lists_of(&pool, row.id).await? {
            let filter: ContactFilter = serde_json::from_value(list.filter)?;
            let order: Vec<SortKey> = serde_json::from_value(list.sort)?;
            let query = CallListQuery {
                tenant: row.tenant_id,
                campaign: row.id,
                settings: &settings,
                filter: &filter,
                order: &order,
                now: Utc::now(),
            };
            for member in contact::next_to_dial(&pool, &query, room).await? {
                if !picked.iter().any(|p| p.contact.id == member.contact.id) {
                    picked.push(member);
                }
            }
            if picked.len() as i64 >= room {
                break;
            }
        }
        picked.truncate(room as usize);
        if picked.is_empty() {
            return Ok(Round::idle("no_contacts"));
        }
        let detect_machine = settings
            .dialing_rules
            .get("detect_machine")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let mut placed = 0;
        let mut refused = false;
        for member in picked {
            let ctx = effects.context_for(row.tenant_id.to_string());
            let key = ctx.idempotency_key.clone().unwrap_or_default();
            let call_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes());
            let dial = Dial {
                call_id,
                tenant: row.tenant_id,
                campaign: Some(&row),
                callee: Callee::Contact(&member.contact),
                from: None,
                detect_machine,
                carrier: None,
                metadata: None,
            };
            // Whatever happens next, a call left requested is failed in a minute.
            effects.set_timer(
                format!("placing:{call_id}"),
                Utc::now() + PLACING_TIMEOUT,
                json!({"call_id": call_id}),
            );
            match self.calls.place(dial, &ctx).await {
                Ok(call) if call.repeated => {}
                Ok(call) => {
                    placed += 1;
                    metrics::counter!(catalog::DIALER_CALLS_PLACED.name).increment(1);
                    tracing::info!(campaign = %row.id, contact = %member.contact.id, call = %call.call_id, "dialed");
                }
                Err(CallsError::Store(e)) => return Err(e),
                Err(error) => {
                    metrics::counter!(catalog::DIALER_DIAL_REFUSALS.name).increment(1);
                    tracing::warn!(campaign = %row.id, contact = %member.contact.id, %error,
                        "the dialer could not place a call; the next round tries again");
                    refused = true;
                    break;
                }
            }
        }
        let outcome = match (refused, placed) {
            (true, _) => "refused",
            (false, 0) => "repeated", // every pick was placed by an earlier firing of this round
            (false, _) => "placed",
        };
        Ok(Round { outcome, placed })
    }
}

/// What one campaign's round did.
struct Round {
    /// placed | refused | repeated | no_room | no_contacts | not_dialing | no_carrier
    outcome: &'static str,
    placed: usize,
}

impl Round {
    fn idle(outcome: &'static str) -> Self {
        Self { outcome, placed: 0 }
    }

    fn outcome(&self) -> &'static str {
        self.outcome
    }
}

/// How many campaigns dial by themselves now, across tenants (the
/// `kraliki_dialer_campaigns_active` gauge, refreshed at each scrape).
pub async fn campaigns_dialing(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let rows = campaign::active(pool).await?;
    Ok(rows.iter().filter(|row| row.settings().is_ok_and(|s| dials_now(row, &s))).count())
}

/// Whether the campaign dials by itself at this moment.
fn dials_now(row: &CampaignRow, settings: &CampaignSettings) -> bool {
    let now = Utc::now();
    row.is_active()
        && settings.campaign_type.is_outbound()
        && settings.dialing_mode != DialingMode::Preview
        && settings.start_time.is_none_or(|s| now >= s)
        && settings.end_time.is_none_or(|e| now < e)
}

fn campaign_timer(campaign: Uuid) -> String {
    format!("campaign:{campaign}")
}

#[async_trait]
impl ProcessManager for Dialer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reads(&self) -> EventFilter {
        EventFilter::events(
            "Campaign",
            &[
                "CampaignStarted",
                "CampaignResumed",
                "CampaignPaused",
                "CampaignCompleted",
                "CampaignCancelled",
                "CampaignArchived",
                "CampaignDeleted",
            ],
        )
        .and_events("Call", &["CallCompleted", "CallFailed", "CallbackScheduled"])
    }

    async fn handle(&self, e: &StoredEvent, effects: &mut Effects<'_>) -> anyhow::Result<()> {
        let now = Utc::now();
        match e.aggregate_type.as_str() {
            "Campaign" => {
                let campaign: Uuid = e.aggregate_id.parse()?;
                match e.decode::<CampaignEvent>()? {
                    CampaignEvent::CampaignStarted { .. } | CampaignEvent::CampaignResumed { .. } => {
                        // The round reads the campaign's view and re-arms the timer only if it
                        // shows the campaign active: it must include the start first.
                        effects.wait_for(campaign::NAME).await?;
                        effects.set_timer(campaign_timer(campaign), now, json!({"campaign_id": campaign}));
                    }
                    _ => effects.cancel_timer(campaign_timer(campaign)),
                }
            }
            _ => match e.decode::<CallEvent>()? {
                // A line is free: the campaign's next round now.
                CallEvent::CallCompleted { campaign_id: Some(campaign), .. }
                | CallEvent::CallFailed { campaign_id: Some(campaign), .. } => {
                    effects.set_timer(campaign_timer(campaign), now, json!({"campaign_id": campaign}));
                }
                CallEvent::CallbackScheduled { callback_at, campaign_id, .. } => {
                    effects.set_timer(
                        format!("callback:{}", e.aggregate_id),
                        callback_at,
                        json!({"campaign_id": campaign_id}),
                    );
                }
                _ => {}
            },
        }
        Ok(())
    }

    async fn on_timer(&self, timer: &Timer, effects: &mut Effects<'_>) -> anyhow::Result<()> {
        let campaign =
            timer.payload.get("campaign_id").and_then(|c| c.as_str()).and_then(|c| c.parse::<Uuid>().ok());
        if let Some(call_id) = timer.timer_key.strip_prefix("placing:") {
            return self.expire_placement(call_id, effects).await;
        }
        let (Some(campaign), Ok(tenant)) = (campaign, timer.tenant_id.parse::<Uuid>()) else { return Ok(()) };
        self.round(effects, tenant, campaign).await?;
        // The campaign's own timer comes round again while it is active.
        if timer.timer_key.starts_with("campaign:") {
            let pool = effects.pool().clone();
            if let Some(row) = campaign::get(&pool, tenant, campaign).await? {
                if row.is_active() {
                    let next = Utc::now() + chrono::TimeDelta::from_std(self.tick).unwrap_or_default();
                    effects.set_timer(campaign_timer(campaign), next, json!({"campaign_id": campaign}));
                }
            }
        }
        Ok(())
    }
}

impl Dialer {
    /// A call still requested a minute after: its carrier never took it.
    async fn expire_placement(&self, call_id: &str, effects: &mut Effects<'_>) -> anyhow::Result<()> {
        let (call, _) = effects.dispatcher().load::<Call>(call_id).await?;
        if call.status == CallStatus::Requested {
            let command = CallCommand::FailCall {
                reason: "the call was requested but no carrier took it (the server stopped while placing it)"
                    .into(),
                at: Utc::now(),
            };
            if let Err(error) = effects.execute::<Call>(call_id, command).await {
                tracing::warn!(call = call_id, %error, "could not fail a call left requested");
            }
        }
        Ok(())
    }
}
