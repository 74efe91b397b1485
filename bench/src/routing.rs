//! The router's figures (`--only routing`), each beside a baseline measured in the same run:
//!
//! 1. One routing decision over N candidates (default 1,000) for every strategy: p50/p99 of
//!    `domain::routing::decide`, against the floor of any ranking router — one pass computing
//!    every candidate's idle time and a sort of them by it.
//! 2. Offers end to end through the log: A agents (default 200) in one queue, calls queued at R/s
//!    (default 50) for S seconds (default 60), simulated agents answering each offer and
//!    hanging up a while later. Queued → agent reserved p50/p99 (from the two events'
//!    `recorded_at`), against one command's append through the dispatcher in the same run;
//!    double reservations (walked from every agent's stream) and calls left waiting while an
//!    agent was free (sampled every 100 ms, a call counted when two samples 500 ms apart both
//!    see it waiting beside a free agent).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Duration as Span, TimeZone, Utc};
use clap::Args;
use kraliki_commands::{CommandContext, Dispatcher};
use kraliki_domain::agent::{Agent, AgentCommand, AgentProfile, AgentState};
use kraliki_domain::queue::{Queue, QueueCommand, QueueMember, QueueSettings};
use kraliki_domain::queued_call::{QueuedCall, QueuedCallCommand};
use kraliki_domain::routing::{decide, CallToRoute, Candidate, RoutingInput, Strategy, StrategyConfig};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::percentile;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Routing")]
pub struct RoutingArgs {
    /// Candidates in the decision measurement.
    #[arg(long, default_value_t = 1000)]
    pub routing_candidates: usize,
    /// Decisions measured per strategy.
    #[arg(long, default_value_t = 3000)]
    pub routing_decisions: usize,
    /// Agents in the end-to-end measurement.
    #[arg(long, default_value_t = 200)]
    pub routing_agents: usize,
    /// Calls queued per second in the end-to-end measurement.
    #[arg(long, default_value_t = 50)]
    pub routing_rate: u64,
    /// Seconds of queueing in the end-to-end measurement.
    #[arg(long, default_value_t = 60)]
    pub routing_seconds: u64,
}

/// A deterministic pseudo-random stream (SplitMix64) for the synthetic agents.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn synthetic_input(n: usize, strategy: Strategy) -> RoutingInput {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).single().expect("valid time");
    let mut rng = Mix(7);
    let skills = ["billing", "sales", "tech"];
    let languages = ["en", "cs", "de"];
    let candidates = (0..n)
        .map(|i| {
            let state = match rng.below(10) {
                0..=5 => AgentState::Available,
                6 => AgentState::OnCall,
                7 => AgentState::WrapUp,
                8 => AgentState::Break,
                _ => AgentState::Offline,
            };
            let mut attributes = Map::new();
            attributes.insert("tenure".into(), json!(rng.below(10)));
            Candidate {
                agent_id: Uuid::from_u128(i as u128 + 1),
                state,
                capacity: 1 + u32::from(rng.below(4) == 0),
                active_calls: u32::from(state == AgentState::OnCall),
                has_offer: rng.below(20) == 0,
                rejected_this_call: false,
                skills: skills.iter().map(|s| ((*s).to_owned(), 1 + rng.below(5) as u8)).collect(),
                languages: languages
                    .iter()
                    .take(1 + rng.below(3) as usize)
                    .map(|l| ((*l).to_owned(), 1 + rng.below(5) as u8))
                    .collect(),
                last_call_ended_at: (rng.below(5) != 0).then(|| now - Span::seconds(rng.below(3600) as i64)),
                available_since: Some(now - Span::seconds(rng.below(7200) as i64)),
                calls_answered_today: rng.below(40) as u32,
                occupancy: rng.below(1000) as f64 / 1000.0,
                rating: rng.below(50) as f64 / 10.0,
                attributes,
                member_index: i,
            }
        })
        .collect();
    let mut config = StrategyConfig::default();
    config.custom.attributes.insert("tenure".into(), 0.5);
    RoutingInput {
        now,
        call: CallToRoute {
            call_id: Uuid::from_u128(u128::MAX),
            queue_id: Some(Uuid::from_u128(u128::MAX - 1)),
            priority: 3,
            arrived_at: now - Span::seconds(12),
            waited_ms: 12_000,
            required_skills: BTreeMap::from([("billing".to_owned(), 2)]),
            required_language: (strategy == Strategy::Language).then(|| "cs".to_owned()),
            vip: strategy == Strategy::Vip,
            preferred_agent: None,
            attributes: Map::new(),
        },
        candidates,
        strategy,
        config,
        rr_pointer: Some(n / 2),
        seed: 42,
        rule: None,
    }
}

/// The floor: one pass computing each candidate's idle time, one sort by it.
fn baseline(input: &RoutingInput) -> Option<Uuid> {
    let now = input.now;
    let mut keyed: Vec<(i64, Uuid)> = input
        .candidates
        .iter()
        .map(|c| {
            let since = c.last_call_ended_at.or(c.available_since).unwrap_or(now);
            ((now - since).num_milliseconds(), c.agent_id)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| b.cmp(a));
    keyed.first().map(|k| k.1)
}

fn time_each<T>(runs: usize, mut f: impl FnMut() -> T) -> Vec<f64> {
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f());
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Measurement 1.
pub fn decisions(args: &RoutingArgs) {
    let n = args.routing_candidates;
    let runs = args.routing_decisions.max(100);
    println!("routing decision, {n} candidates, {runs} decisions per strategy (µs):");
    println!("  {:<16} {:>9} {:>9} {:>14}", "strategy", "p50", "p99", "p50 ÷ floor");
    let floor_input = synthetic_input(n, Strategy::LongestIdle);
    let floor = time_each(runs, || baseline(&floor_input));
    let floor_p50 = percentile(&floor, 50.0);
    println!("  {:<16} {:>9.1} {:>9.1} {:>14}", "floor (sort)", floor_p50, percentile(&floor, 99.0), "1.00");
    for strategy in Strategy::ALL {
        let input = synthetic_input(n, strategy);
        let times = time_each(runs, || decide(&input));
        let (p50, p99) = (percentile(&times, 50.0), percentile(&times, 99.0));
        println!("  {:<16} {:>9.1} {:>9.1} {:>14.2}", strategy.as_str(), p50, p99, p50 / floor_p50);
    }
}

/// Measurement 2, on a running server.
pub async fn end_to_end(app: &kraliki_api::Application, args: &RoutingArgs) -> anyhow::Result<()> {
    let state = app.state();
    let dispatcher = state.dispatcher.clone();
    let pool = state.pool.clone();
    let tenant = Uuid::now_v7();
    let ctx = CommandContext::new(tenant.to_string(), "bench");
    let (agents, rate, seconds) =
        (args.routing_agents.max(1), args.routing_rate.max(1), args.routing_seconds.max(1));

    let mut ids = Vec::with_capacity(agents);
    for i in 0..agents {
        let id = Uuid::now_v7();
        let profile = AgentProfile {
            user_id: Uuid::now_v7(),
            display_name: format!("Agent {i}"),
            wrap_up_seconds: 0,
            ..AgentProfile::default()
        };
        exec::<Agent>(&dispatcher, &id, AgentCommand::CreateAgent { profile, at: Utc::now() }, &ctx).await?;
        let available = AgentCommand::ChangeState { to: AgentState::Available, reason: None, at: Utc::now() };
        exec::<Agent>(&dispatcher, &id, available, &ctx).await?;
        ids.push(id);
    }
    let queue = Uuid::now_v7();
    let settings = QueueSettings {
        name: "Bench".into(),
        members: ids.iter().map(|id| QueueMember::Agent { id: *id }).collect(),
        offer_timeout_seconds: 60,
        ..QueueSettings::default()
    };
    exec::<Queue>(&dispatcher, &queue, QueueCommand::CreateQueue { settings, at: Utc::now() }, &ctx).await?;

    let stop = CancellationToken::new();
    // Hold time: half of what keeps the agents exactly busy (about half of them on calls).
    let hold = Duration::from_secs_f64(0.5 * agents as f64 / rate as f64);
    let answering = tokio::spawn(simulated_agents(
        dispatcher.clone(),
        pool.clone(),
        tenant,
        ctx.clone(),
        hold,
        stop.clone(),
    ));
    let sampling = tokio::spawn(sample_waiting(pool.clone(), tenant, queue, stop.clone()));

    let mut appends = Vec::new();
    let mut calls = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut pending = tokio::task::JoinSet::new();
    while Instant::now() < deadline {
        ticker.tick().await;
        let call = Uuid::now_v7();
        calls.push(call);
        let (dispatcher, ctx) = (dispatcher.clone(), ctx.clone());
        pending.spawn(async move {
            let command = QueuedCallCommand::Enqueue {
                queue_id: queue,
                call: CallToRoute {
                    call_id: call,
                    queue_id: Some(queue),
                    priority: 0,
                    arrived_at: Utc::now(),
                    waited_ms: 0,
                    required_skills: BTreeMap::new(),
                    required_language: None,
                    vip: false,
                    preferred_agent: None,
                    attributes: Map::new(),
                },
                max_wait_seconds: 0,
                at: Utc::now(),
            };
            let t = Instant::now();
            exec::<QueuedCall>(&dispatcher, &call, command, &ctx).await?;
            anyhow::Ok(t.elapsed().as_secs_f64() * 1000.0)
        });
        while let Some(done) = pending.try_join_next() {
            appends.push(done??);
        }
    }
    while let Some(done) = pending.join_next().await {
        appends.push(done??);
    }
    // Every call reaches an agent (the agents free up as they hang up).
    let drained = Instant::now() + Duration::from_secs(60);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM queue_entry_view WHERE queue_id = $1 AND status IN ('waiting', 'offered')",
        )
        .bind(queue)
        .fetch_one(&pool)
        .await?;
        if left == 0 || Instant::now() > drained {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let stuck = sampling.await??;
    answering.await??;

    let mut latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM (min(r.recorded_at) - q.recorded_at)) * 1000)::float8 \
         FROM events q JOIN events r ON r.aggregate_type = 'Agent' AND r.event_type = 'AgentReserved' \
           AND r.payload->'AgentReserved'->>'call_id' = q.aggregate_id \
         WHERE q.aggregate_type = 'QueuedCall' AND q.event_type = 'CallQueued' AND q.aggregate_id = ANY($1) \
         GROUP BY q.aggregate_id, q.recorded_at",
    )
    .bind(calls.iter().map(Uuid::to_string).collect::<Vec<_>>())
    .fetch_all(&pool)
    .await?;
    latencies.sort_by(f64::total_cmp);
    appends.sort_by(f64::total_cmp);
    let doubles = double_reservations(&pool, &ids).await?;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let append_p50 = percentile(&appends, 50.0);
    println!(
        "routing end to end, {agents} agents, {rate} calls/s for {seconds} s ({} calls, {} reserved):",
        calls.len(),
        latencies.len()
    );
    println!("  queued → reserved      p50 {p50:>7.1} ms  p99 {:>7.1} ms", p99);
    println!(
        "  one append (baseline)  p50 {append_p50:>7.1} ms  p99 {:>7.1} ms   queued→reserved p50 ÷ append p50 = {:.1}",
        percentile(&appends, 99.0),
        p50 / append_p50
    );
    println!("  double reservations {doubles}, calls left waiting beside a free agent {stuck}");
    Ok(())
}

async fn exec<A>(
    dispatcher: &Dispatcher,
    id: &Uuid,
    command: A::Command,
    ctx: &CommandContext,
) -> anyhow::Result<()>
where
    A: cqrs_es::Aggregate<Services = ()> + Clone + 'static,
    A::Command: kraliki_domain::CommandPolicy + Clone + Send + Sync,
{
    dispatcher.execute::<A>(&id.to_string(), command, ctx).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Agents who answer every offer at once and hang up after `hold`.
async fn simulated_agents(
    dispatcher: Dispatcher,
    pool: sqlx::PgPool,
    tenant: Uuid,
    ctx: CommandContext,
    hold: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let seen: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let mut calls = tokio::task::JoinSet::new();
    while !stop.is_cancelled() {
        let offers: Vec<(Uuid, Value)> = sqlx::query_as(
            "SELECT id, offer FROM agent_view WHERE tenant_id = $1 AND state = 'reserved' AND offer IS NOT NULL",
        )
        .bind(tenant)
        .fetch_all(&pool)
        .await?;
        for (agent, offer) in offers {
            let Some(call) = offer["call_id"].as_str().and_then(|c| c.parse::<Uuid>().ok()) else { continue };
            if !seen.lock().expect("seen").insert(offer["offer_id"].to_string()) {
                continue;
            }
            let (dispatcher, ctx) = (dispatcher.clone(), ctx.clone());
            calls.spawn(async move {
                exec::<Agent>(
                    &dispatcher,
                    &agent,
                    AgentCommand::ConnectCall { call_id: call, at: Utc::now() },
                    &ctx,
                )
                .await?;
                tokio::time::sleep(hold).await;
                exec::<Agent>(
                    &dispatcher,
                    &agent,
                    AgentCommand::EndCall { call_id: call, at: Utc::now() },
                    &ctx,
                )
                .await
            });
        }
        while let Some(done) = calls.try_join_next() {
            done??;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while let Some(done) = calls.join_next().await {
        done??;
    }
    Ok(())
}

/// Calls seen waiting beside a free agent in two samples 500 ms apart.
async fn sample_waiting(
    pool: sqlx::PgPool,
    tenant: Uuid,
    queue: Uuid,
    stop: CancellationToken,
) -> anyhow::Result<usize> {
    let mut history: Vec<(Instant, HashSet<Uuid>)> = Vec::new();
    let mut stuck = HashSet::new();
    while !stop.is_cancelled() {
        let free: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM agent_view WHERE tenant_id = $1 AND state = 'available' AND offer IS NULL",
        )
        .bind(tenant)
        .fetch_one(&pool)
        .await?;
        let waiting: HashSet<Uuid> = if free > 0 {
            sqlx::query_scalar(
                "SELECT call_id FROM queue_entry_view WHERE queue_id = $1 AND status = 'waiting'",
            )
            .bind(queue)
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect()
        } else {
            HashSet::new()
        };
        let now = Instant::now();
        if let Some((_, earlier)) =
            history.iter().rev().find(|(at, _)| now.duration_since(*at) >= Duration::from_millis(500))
        {
            stuck.extend(waiting.intersection(earlier).copied());
        }
        history.push((now, waiting));
        history.retain(|(at, _)| now.duration_since(*at) < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(stuck.len())
}

/// Reservations appended while the agent already held one (walked from each agent's stream).
async fn double_reservations(pool: &sqlx::PgPool, agents: &[Uuid]) -> anyhow::Result<usize> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, event_type FROM events WHERE aggregate_type = 'Agent' AND aggregate_id = ANY($1) \
         ORDER BY aggregate_id, sequence",
    )
    .bind(agents.iter().map(Uuid::to_string).collect::<Vec<_>>())
    .fetch_all(pool)
    .await
    .context("reading the agents' streams")?;
    let mut held: HashMap<String, bool> = HashMap::new();
    let mut doubles = 0;
    for (agent, kind) in rows {
        let h = held.entry(agent).or_default();
        match kind.as_str() {
            "AgentReserved" => {
                doubles += usize::from(*h);
                *h = true;
            }
            "AgentOfferAccepted" | "AgentOfferRejected" | "AgentOfferExpired" | "AgentOfferCancelled" => {
                *h = false
            }
            _ => {}
        }
    }
    Ok(doubles)
}
