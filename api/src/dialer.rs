//! The dialer: places the calls of every active campaign that dials by itself.
//!
//! Progressive and predictive campaigns are dialed; a preview campaign waits for an agent's
//! click (`POST /api/v1/calls/outbound`), an inbound one never dials. Every round
//! (`KRALIKI_DIALER__TICK_MS`), for each such campaign inside its start and end time:
//! - room = `max_concurrent_calls` − calls in flight, and at most `calls_per_hour` − calls
//!   started in the last hour;
//! - the next contacts of its call lists, in list order and each list's own order (due
//!   callbacks first; calling window in every zone of the number, do-not-call, attempts, retry
//!   delays — the `next` query), without repeats;
//! - each placed like `POST /api/v1/calls/outbound`, which checks do-not-call and the window
//!   again right before the dial. A carrier that refuses ends the campaign's round; the next
//!   round tries again.
//!
//! Until human agents are modelled every answered call goes to the campaign's AI voice agent,
//! so the pace is the campaign's own limits (progressive); predictive over-dialing (DOMAIN.md)
//! needs agent states and comes with them.
//!
//! Any number of servers may run it: a campaign is dialed by one at a time (an advisory lock
//! per campaign), and counts are read only after the read models have caught up with every
//! event written so far, so calls just placed (by any server) are counted.

use std::time::Duration;

use chrono::Utc;
use kraliki_domain::call_list::{ContactFilter, SortKey};
use kraliki_domain::campaign::{CampaignSettings, DialingMode};
use kraliki_projections::campaign::{self, CampaignRow};
use kraliki_projections::contact::{self, CallListQuery, MemberRow};
use kraliki_projections::{call, position};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Runs rounds until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let every = Duration::from_millis(state.settings.dialer.tick_ms.max(10));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        if let Err(error) = round(&state).await {
            tracing::warn!(%error, "dialer round failed");
        }
    }
}

/// Looks at every active campaign once; returns how many calls were placed.
pub async fn round(state: &AppState) -> anyhow::Result<usize> {
    let p = &state.settings.providers;
    let twilio = p.twilio_account_sid.is_some() && p.twilio_auth_token.is_some();
    let telnyx = p.telnyx_api_key.is_some() && p.telnyx_connection_id.is_some();
    if !twilio && !telnyx {
        return Ok(0); // no carrier to dial through
    }
    let mut placed = 0;
    for row in campaign::active(&state.pool).await? {
        let settings = match row.settings() {
            Ok(settings) => settings,
            Err(error) => {
                tracing::warn!(campaign = %row.id, %error, "campaign settings unreadable; not dialed");
                continue;
            }
        };
        let now = Utc::now();
        if !settings.campaign_type.is_outbound()
            || settings.dialing_mode == DialingMode::Preview
            || settings.start_time.is_some_and(|s| now < s)
            || settings.end_time.is_some_and(|e| now >= e)
        {
            continue;
        }
        let mut lock = state.pool.acquire().await?;
        let id = row.id.to_string();
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('kraliki.dialer'), hashtext($1))")
                .bind(&id)
                .fetch_one(&mut *lock)
                .await?;
        if !locked {
            continue; // another server is dialing it
        }
        let dialed = dial(state, &row, &settings).await;
        sqlx::query("SELECT pg_advisory_unlock(hashtext('kraliki.dialer'), hashtext($1))")
            .bind(&id)
            .execute(&mut *lock)
            .await?;
        placed += dialed?;
    }
    Ok(placed)
}

/// One campaign's round, under its lock.
async fn dial(state: &AppState, row: &CampaignRow, settings: &CampaignSettings) -> anyhow::Result<usize> {
    let pool = &state.pool;
    // Count only once every call written so far (by any server) is in the read models.
    let head: Option<i64> =
        sqlx::query_scalar("SELECT max(global_position) FROM events").fetch_one(pool).await?;
    if let Some(head) = head {
        let wait = Duration::from_millis(state.settings.http.read_wait_max_ms);
        for name in [campaign::NAME, contact::NAME, call::NAME] {
            position::wait_for(pool, &state.wake, name, head, wait).await?;
        }
    }
    let Some(row) = campaign::get(pool, row.tenant_id, row.id).await?.filter(|r| r.status == "active") else {
        return Ok(0);
    };
    let started = call::started_since(pool, row.id, Utc::now() - chrono::Duration::hours(1)).await?;
    let room = (i64::from(settings.max_concurrent_calls) - i64::from(row.calls_in_flight))
        .min(i64::from(settings.calls_per_hour) - started);
    if room <= 0 {
        return Ok(0);
    }
    let mut picked: Vec<MemberRow> = Vec::new();
    for list in campaign::call_lists_of(pool, row.id).await? {
        let filter: ContactFilter = serde_json::from_value(list.filter)?;
        let order: Vec<SortKey> = serde_json::from_value(list.sort)?;
        let query = CallListQuery {
            tenant: row.tenant_id,
            campaign: row.id,
            settings,
            filter: &filter,
            order: &order,
            now: Utc::now(),
        };
        for member in contact::next_to_dial(pool, &query, room).await? {
            if !picked.iter().any(|p| p.contact.id == member.contact.id) {
                picked.push(member);
            }
        }
        if picked.len() as i64 >= room {
            break;
        }
    }
    picked.truncate(room as usize);
    let detect_machine =
        settings.dialing_rules.get("detect_machine").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let mut placed = 0;
    for member in picked {
        match crate::routes::telephony::place_call(state, &row, &member.contact, detect_machine, None).await {
            Ok((call, _)) => {
                placed += 1;
                tracing::info!(campaign = %row.id, contact = %member.contact.id, call = %call.call_id, "dialed");
            }
            Err(error) => {
                tracing::warn!(campaign = %row.id, contact = %member.contact.id, code = ?error.code,
                    detail = ?error.detail, "the dialer could not place a call; the next round tries again");
                break;
            }
        }
    }
    Ok(placed)
}
