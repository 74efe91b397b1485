//! The router: a waiting call and an eligible agent make an offer.
//!
//! Events in, commands out, like every manager (see the module above):
//! - something that may let a queue's calls reach an agent — a call queued, an offer ended, an
//!   agent available again, a queue's members or settings changed, a relaxation step or a VIP
//!   hold over (a timer) — routes that queue: for its waiting calls in the queue strategy's
//!   order, the engine decides from the read models (`domain::routing::decide`) and the call's
//!   aggregate records the decision with its whole input (`RoutingDecided`);
//! - a decision with a winner reserves the agent (`ReserveAgent`, the offer the decision names);
//!   an agent who cannot be reserved any more (the view was stale) ends the offer as
//!   `unavailable` and the call is routed again;
//! - the agent's answer comes back as agent events: accepted → the call is assigned; rejected or
//!   missed (the reservation timer) → the call waits again and that agent is not offered it
//!   again; a call abandoned while offered withdraws the agent's offer;
//! - a queue's max wait is a timer: the call overflows to the queue's target (another queue is
//!   the call's next visit).
//!
//! Exactly once: every command is keyed by its cause and what it is for (`router:<cause>:
//! <call>`), so a replay after a crash re-issues the same keys and a decision already recorded
//! is answered, not made again. No agent is reserved twice (the agent aggregate refuses a
//! second reservation) and no call is offered twice at once (the call's aggregate refuses a
//! decision while an offer is pending). Reads: the router reads the read models once they
//! include the event it handles; what it decided since (not yet in them) it keeps in memory
//! until it handles the `RoutingDecided` that recorded it, so one batch's decisions see each
//! other without waiting for the read models between them.

use std::collections::HashMap;

use futures::StreamExt;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use kraliki_domain::agent::{Agent, AgentCommand, AgentEvent, AgentState};
use kraliki_domain::queue::{OverflowTarget, QueueMember, QueueSettings};
use kraliki_domain::queued_call::{self as qc, OfferOutcome, QueuedCall, QueuedCallCommand, QueuedCallEvent};
use kraliki_domain::routing::{
    self, next_change_ms, order_waiting_for, CallToRoute, Candidate, QueueStrategy, RoutingInput,
};
use kraliki_projections::metrics_catalog as catalog;
use kraliki_projections::queued_call::{self as entries, EntryRow};
use kraliki_projections::{agent as agents, queue as queues, EventFilter, StoredEvent};
use serde_json::json;
use uuid::Uuid;

use super::{Cause, Effects, ProcessManager, Timer};
use crate::DispatchError;

pub const NAME: &str = "router";

/// The read models a decision reads.
const READS: [&str; 3] = [entries::NAME, agents::NAME, queues::NAME];

#[derive(Default)]
pub struct Router {
    recent: Mutex<Recent>,
    /// What the batch being handled asks to route, done once at its end.
    pending: Mutex<Pending>,
}

/// The queues and agents to route at the end of a batch: every call queued and every agent
/// freed in it lead to one pass per queue instead of one each.
#[derive(Default)]
struct Pending {
    /// queue → (tenant, the calls queued in the batch).
    queues: HashMap<Uuid, (Uuid, Vec<Uuid>)>,
    /// (tenant, agent): route the queues the agent is a member of.
    agents: Vec<(Uuid, Uuid)>,
    /// Agents' answers to offers, told to their calls side by side.
    answers: Vec<Answer>,
}

/// An agent answered (or missed, or lost) an offer: the call's aggregate hears it, keyed by
/// the agent's event.
struct Answer {
    cause: Cause,
    call: Uuid,
    agent: Uuid,
    offer: Uuid,
    /// None: accepted.
    outcome: Option<OfferOutcome>,
    at: DateTime<Utc>,
}

impl Pending {
    fn queue(&mut self, tenant: Uuid, queue: Uuid, just_queued: Option<Uuid>) {
        let entry = self.queues.entry(queue).or_insert_with(|| (tenant, Vec::new()));
        entry.1.extend(just_queued);
    }

    fn agent(&mut self, tenant: Uuid, agent: Uuid) {
        if !self.agents.contains(&(tenant, agent)) {
            self.agents.push((tenant, agent));
        }
    }
}

/// What this instance decided that the read models may not show yet: from its `Decide` until
/// it handles the `RoutingDecided` that recorded it (every later cause it reads the read models
/// at includes that event, and so the offer). Only efficiency hangs on it: an instance taking
/// over starts empty, and a stale view at worst leads to a reservation the agent's aggregate
/// refuses (the offer ends `unavailable` and the call is routed again).
#[derive(Default)]
struct Recent {
    /// Agents offered a call.
    offered: HashMap<Uuid, Instant>,
    /// Visits decided for: (call, visit) → the decision's number.
    decided: HashMap<(Uuid, u32), (u32, Instant)>,
    /// Round-robin pointers moved: queue → pointer.
    pointers: HashMap<Uuid, (usize, Instant)>,
    /// Offers this instance reserved an agent for right after deciding: offer → agent.
    reserved: HashMap<Uuid, (Uuid, Instant)>,
}

/// A `Recent` entry older than this is forgotten (its event was lost to this instance).
const RECENT_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl Recent {
    fn forget_old(&mut self) {
        self.offered.retain(|_, at| at.elapsed() < RECENT_FOR);
        self.decided.retain(|_, (_, at)| at.elapsed() < RECENT_FOR);
        self.pointers.retain(|_, (_, at)| at.elapsed() < RECENT_FOR);
        self.reserved.retain(|_, (_, at)| at.elapsed() < RECENT_FOR);
    }
}

/// Decisions (and their reservations) of one pass recorded at once.
const PARALLEL_COMMANDS: usize = 16;

/// One decision of a pass, to be recorded.
struct Job {
    call: Uuid,
    visit: u32,
    number: u32,
    decide: Option<QueuedCallCommand>,
    offer: Option<Offer>,
    rr_after: Option<usize>,
}

/// An offer a decision makes: what reserving its agent needs.
struct Offer {
    call: Uuid,
    agent: Uuid,
    offer: Uuid,
    queue: Option<Uuid>,
    expires_at: DateTime<Utc>,
    decided_at: DateTime<Utc>,
}

fn overflow_key(call: Uuid, visit: i32) -> String {
    format!("overflow:{call}:{visit}")
}

fn reroute_key(call: Uuid, visit: i32) -> String {
    format!("reroute:{call}:{visit}")
}

fn outcome_label(o: OfferOutcome) -> &'static str {
    match o {
        OfferOutcome::Rejected => "rejected",
        OfferOutcome::Expired => "expired",
        OfferOutcome::Cancelled => "cancelled",
        OfferOutcome::Unavailable => "unavailable",
    }
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the read models include the cause (what this instance wrote since is in
    /// [`Recent`]).
    async fn catch_up(&self, fx: &Effects<'_>) -> anyhow::Result<()> {
        fx.wait_for_all(&READS).await
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues a queued-call command; a refusal is a decision (the call moved on), not an error.
    async fn call_command(
        &self,
        fx: &Effects<'_>,
        part: &str,
        call: Uuid,
        command: QueuedCallCommand,
    ) -> anyhow::Result<bool> {
        match fx.execute_keyed::<QueuedCall>(part, &call.to_string(), command).await {
            Ok(o) => Ok(o.events > 0),
            Err(DispatchError::Rejected(why)) => {
                tracing::debug!(%call, %why, "queued call moved on");
                Ok(false)
            }
            Err(DispatchError::Conflict) => Ok(false),
            Err(other) => Err(anyhow::anyhow!("queued call {call}: {other}")),
        }
    }

    async fn agent_command(
        &self,
        fx: &Effects<'_>,
        part: &str,
        agent: Uuid,
        command: AgentCommand,
    ) -> anyhow::Result<Result<(), String>> {
        match fx.execute_keyed::<Agent>(part, &agent.to_string(), command).await {
            Ok(_) => Ok(Ok(())),
            Err(DispatchError::Rejected(why)) => Ok(Err(why.to_string())),
            Err(DispatchError::Conflict) => Ok(Err("conflict".into())),
            Err(other) => Err(anyhow::anyhow!("agent {agent}: {other}")),
        }
    }

    /// Decides for the waiting calls of `queue` while agents are free: the head of the queue, as
    /// many calls as there are free agents (and `just_queued`, so that a new call's first
    /// decision is recorded even when nobody is free).
    async fn route_queue(
        &self,
        fx: &mut Effects<'_>,
        tenant: Uuid,
        queue: Uuid,
        just_queued: &[Uuid],
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        self.catch_up(fx).await?;
        let caught_up = started.elapsed();
        let pool = fx.pool().clone();
        let Some(row) = queues::get(&pool, tenant, queue).await? else { return Ok(()) };
        let settings = row.settings()?;
        let now = Utc::now();
        let mut candidates = candidates(&pool, tenant, &settings, now).await?;
        let mut pointer = entries::pointer(&pool, queue).await?;
        let decided = {
            let mut recent = self.recent();
            recent.forget_old();
            for c in &mut candidates {
                c.has_offer |= recent.offered.contains_key(&c.agent_id);
            }
            if let Some((p, _)) = recent.pointers.get(&queue) {
                pointer = Some(*p);
            }
            recent.decided.iter().map(|(k, (n, _))| (*k, *n)).collect::<HashMap<_, _>>()
        };
        // Calls this instance decided for that the read model still shows waiting come first
        // in the head and are skipped: read past them.
        let free_agents = candidates.iter().filter(|c| free(c)).count();
        let pending = decided.len();
        let limit = i64::try_from(free_agents + pending + 1).unwrap_or(i64::MAX);
        let fifo = settings.strategy == QueueStrategy::Fifo;
        let mut waiting = entries::waiting_head(&pool, tenant, queue, fifo, limit).await?;
        for new in just_queued {
            if waiting.iter().any(|e| e.call_id == *new) {
                continue;
            }
            if let Some(e) = entries::current(&pool, tenant, *new).await? {
                if e.status == "waiting" && e.queue_id == queue {
                    waiting.push(e);
                }
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        let strategy = settings.effective_strategy();

        let mut calls: HashMap<Uuid, (&EntryRow, CallToRoute)> = HashMap::new();
        for e in &waiting {
            let mut call = e.call()?;
            call.waited_ms = u64::try_from((now - e.arrived_at).num_milliseconds()).unwrap_or(0);
            calls.insert(e.call_id, (e, call));
        }
        let list: Vec<CallToRoute> = calls.values().map(|(_, c)| c.clone()).collect();
        let mut jobs = Vec::new();
        for call_id in order_waiting_for(settings.strategy, &list) {
            let (entry, call) = &calls[&call_id];
            let someone_free = candidates.iter().any(free);
            if !someone_free && entry.decisions > 0 {
                continue;
            }
            let visit = u32::try_from(entry.visit).unwrap_or(0);
            let number = u32::try_from(entry.decisions).unwrap_or(0) + 1;
            if decided.get(&(call_id, visit)).is_some_and(|n| *n >= number) {
                // Decided here already; the read model does not show it yet.
                continue;
            }
            let turned_down = entry.turned_down();
            let mut input = RoutingInput {
                now,
                call: call.clone(),
                candidates: candidates.clone(),
                strategy,
                config: settings.strategy_config.clone(),
                rr_pointer: pointer,
                seed: qc::seed(call_id, visit, number),
                rule: None,
            };
            for c in &mut input.candidates {
                c.rejected_this_call |= turned_down.contains(&c.agent_id);
            }
            // What the aggregate will decide from the same input (it fills in the same call).
            let expected = routing::decide(&input);
            if expected.winner.is_none() && entry.last_why_none.is_some() && entry.decisions > 0 {
                let said = expected.why_none.and_then(|w| serde_json::to_value(w).ok());
                if said.as_ref().and_then(|v| v.as_str()) == entry.last_why_none.as_deref() {
                    continue;
                }
            }
            let offer_timeout = settings.offer_timeout_seconds;
            let decided_at = input.now;
            // The decision is recorded as the (visit, number) expected or not at all: its offer
            // is known, and the agent is reserved at once rather than when it is read back.
            let offer = expected.winner.map(|winner| Offer {
                call: call_id,
                agent: winner,
                offer: qc::offer_id(call_id, visit, number),
                queue: input.call.queue_id,
                expires_at: decided_at + Duration::seconds(i64::from(offer_timeout.max(1))),
                decided_at,
            });
            if let Some(winner) = expected.winner {
                if let Some(c) = candidates.iter_mut().find(|c| c.agent_id == winner) {
                    c.has_offer = true;
                }
                if let Some(after) = expected.rr_pointer_after {
                    pointer = Some(after);
                }
            }
            let decide = QueuedCallCommand::Decide {
                input,
                offer_timeout_seconds: offer_timeout,
                expected: Some((visit, number)),
            };
            let rr_after = expected.rr_pointer_after;
            jobs.push(Job { call: call_id, visit, number, decide: Some(decide), offer, rr_after });
        }
        // The pass's decisions concern different calls and, by construction, different agents:
        // they are recorded (and their agents reserved) side by side.
        let (read, decisions) = (started.elapsed(), jobs.len());
        let fx = &*fx;
        let done: Vec<anyhow::Result<(Job, bool, bool)>> = futures::stream::iter(jobs)
            .map(|mut job| async move {
                let key = format!("decide:{}:{}:{}", job.call, job.visit, job.number);
                let recorded = match job.decide.take() {
                    Some(decide) => self.call_command(fx, &key, job.call, decide).await?,
                    None => false,
                };
                let mut reserved = false;
                if let (true, Some(offer)) = (recorded, &job.offer) {
                    let key = format!("reserve:{}:{}:{}", job.call, job.visit, job.number);
                    reserved = self.reserve(fx, &key, offer).await?;
                }
                Ok((job, recorded, reserved))
            })
            .buffer_unordered(PARALLEL_COMMANDS)
            .collect()
            .await;
        tracing::debug!(
            %queue,
            decisions,
            catch_up_ms = caught_up.as_secs_f64() * 1e3,
            read_ms = (read - caught_up).as_secs_f64() * 1e3,
            record_ms = (started.elapsed() - read).as_secs_f64() * 1e3,
            "routed a queue"
        );
        let mut recent = self.recent();
        for result in done {
            let (job, recorded, reserved) = result?;
            if !recorded {
                continue;
            }
            let outcome = if job.offer.is_some() { "offered" } else { "none" };
            metrics::counter!(catalog::ROUTER_DECISIONS.name, "outcome" => outcome).increment(1);
            recent.decided.insert((job.call, job.visit), (job.number, Instant::now()));
            if let Some(offer) = job.offer {
                recent.offered.insert(offer.agent, Instant::now());
                if reserved {
                    recent.reserved.insert(offer.offer, (offer.agent, Instant::now()));
                }
            }
            if let Some(after) = job.rr_after {
                recent.pointers.insert(queue, (after, Instant::now()));
            }
        }
        Ok(())
    }

    /// Reserves the offer's agent; an agent who cannot be reserved (the view was stale) ends
    /// the offer as `unavailable` and the call is routed again. Whether the agent is reserved.
    async fn reserve(&self, fx: &Effects<'_>, part: &str, o: &Offer) -> anyhow::Result<bool> {
        let reserve = AgentCommand::ReserveAgent {
            offer_id: o.offer,
            call_id: o.call,
            queue_id: o.queue,
            expires_at: o.expires_at.max(Utc::now() + Duration::seconds(1)),
            at: Utc::now().max(o.decided_at),
        };
        match self.agent_command(fx, part, o.agent, reserve).await? {
            Ok(()) => {
                let lag = (Utc::now() - o.decided_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
                metrics::histogram!(catalog::ROUTER_OFFER_LATENCY.name).record(lag.max(0.0));
                Ok(true)
            }
            Err(why) => {
                tracing::info!(call = %o.call, agent = %o.agent, %why, "agent could not be reserved: routing again");
                let end = QueuedCallCommand::EndOffer {
                    offer_id: o.offer,
                    agent_id: o.agent,
                    outcome: OfferOutcome::Unavailable,
                    at: Utc::now(),
                };
                if self.call_command(fx, &format!("unavailable:{}", o.offer), o.call, end).await? {
                    metrics::counter!(catalog::ROUTER_OFFERS.name, "outcome" => "unavailable").increment(1);
                }
                Ok(false)
            }
        }
    }

    /// Routes what the batch asked for: the queues of the agents it freed, and its queues.
    async fn route_pending(&self, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        let Pending { mut queues, agents, answers } = std::mem::take(&mut *self.pending());
        let (started, answered) = (Instant::now(), answers.len());
        self.tell_answers(fx, answers).await?;
        if answered > 0 {
            tracing::debug!(answered, ms = started.elapsed().as_secs_f64() * 1e3, "told calls their answers");
        }
        if queues.is_empty() && agents.is_empty() {
            return Ok(());
        }
        self.catch_up(fx).await?;
        let pool = fx.pool().clone();
        let mut by_tenant: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (tenant, agent) in agents {
            by_tenant.entry(tenant).or_default().push(agent);
        }
        for (tenant, ids) in by_tenant {
            let mut teams = Vec::new();
            for row in agents::rows(&pool, tenant, &ids).await? {
                teams.extend(row.profile().map(|p| p.team_ids).unwrap_or_default());
            }
            teams.sort_unstable();
            teams.dedup();
            for queue in queues::with_any_member(&pool, tenant, &ids, &teams).await? {
                queues.entry(queue).or_insert_with(|| (tenant, Vec::new()));
            }
        }
        let mut order: Vec<_> = queues.into_iter().collect();
        order.sort_by_key(|(queue, _)| *queue);
        for (queue, (tenant, just_queued)) in order {
            self.route_queue(fx, tenant, queue, &just_queued).await?;
        }
        Ok(())
    }

    async fn on_decided(
        &self,
        fx: &mut Effects<'_>,
        e: &StoredEvent,
        event: QueuedCallEvent,
    ) -> anyhow::Result<()> {
        let QueuedCallEvent::RoutingDecided {
            visit,
            number,
            input,
            decision,
            offer_id,
            offer_expires_at,
            at,
        } = event
        else {
            return Ok(());
        };
        let call: Uuid = e.aggregate_id.parse()?;
        {
            // From here on the read models show this decision to every later cause.
            let mut recent = self.recent();
            if recent.decided.get(&(call, visit)).is_some_and(|(n, _)| *n <= number) {
                recent.decided.remove(&(call, visit));
            }
            if let Some(winner) = decision.winner {
                recent.offered.remove(&winner);
            }
            if let (Some(queue), Some(after)) = (decision.queue_id, decision.rr_pointer_after) {
                if recent.pointers.get(&queue).is_some_and(|(p, _)| *p == after) {
                    recent.pointers.remove(&queue);
                }
            }
        }
        let (Some(agent), Some(offer), Some(expires_at)) = (decision.winner, offer_id, offer_expires_at)
        else {
            // Nobody now: the clock alone may change that (a relaxation step, a VIP hold).
            if let Some(ms) = next_change_ms(&input) {
                let due =
                    input.call.arrived_at + Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2));
                let visit = i32::try_from(visit).unwrap_or(0);
                fx.set_timer(
                    reroute_key(call, visit),
                    due,
                    json!({"call": call, "queue": input.call.queue_id}),
                );
            }
            return Ok(());
        };
        let reserved = self.recent().reserved.remove(&offer);
        match reserved {
            // Reserved when decided: the agent the decision names.
            Some((reserved, _)) if reserved == agent => return Ok(()),
            // The decision recorded another winner than the one reserved (the read models this
            // instance decided from were not the aggregate's): that reservation is withdrawn.
            Some((other, _)) => {
                tracing::warn!(%call, %agent, %other, "reserved another agent than the decision names");
                let cancel = AgentCommand::CancelOffer {
                    offer_id: offer,
                    reason: Some("not_the_decision".into()),
                    at: Utc::now(),
                };
                if let Err(why) = self.agent_command(fx, "cancel_other", other, cancel).await? {
                    tracing::debug!(%other, %why, "offer already over");
                }
            }
            None => {}
        }
        // Not reserved by this instance when decided (it crashed in between, or took over).
        let o =
            Offer { call, agent, offer, queue: decision.queue_id, expires_at, decided_at: input.now.min(at) };
        self.reserve(fx, "reserve", &o).await?;
        Ok(())
    }

    /// Tells the calls their agents' answers, side by side (they concern different calls). The
    /// call's aggregate refuses an answer that is not its pending offer's, or comes from another
    /// agent than the offer's (a reservation withdrawn as not the decision's, see `on_decided`).
    async fn tell_answers(&self, fx: &Effects<'_>, answers: Vec<Answer>) -> anyhow::Result<()> {
        let told: Vec<anyhow::Result<()>> = futures::stream::iter(answers)
            .map(|a| async move {
                let (part, command, label) = match a.outcome {
                    None => {
                        let command =
                            QueuedCallCommand::Assign { offer_id: a.offer, agent_id: a.agent, at: a.at };
                        ("assign", command, "accepted")
                    }
                    Some(o) => {
                        let command = QueuedCallCommand::EndOffer {
                            offer_id: a.offer,
                            agent_id: a.agent,
                            outcome: o,
                            at: a.at,
                        };
                        ("offer_ended", command, outcome_label(o))
                    }
                };
                let id = a.call.to_string();
                match fx.execute_caused::<QueuedCall>(&a.cause, part, &id, command).await {
                    Ok(o) if o.events > 0 => {
                        metrics::counter!(catalog::ROUTER_OFFERS.name, "outcome" => label).increment(1);
                    }
                    Ok(_) | Err(DispatchError::Conflict) => {}
                    Err(DispatchError::Rejected(why)) => {
                        tracing::debug!(call = %a.call, %why, "answer to a past offer")
                    }
                    Err(other) => anyhow::bail!("queued call {}: {other}", a.call),
                }
                Ok(())
            })
            .buffer_unordered(PARALLEL_COMMANDS)
            .collect()
            .await;
        told.into_iter().collect()
    }

    async fn on_call_event(&self, fx: &mut Effects<'_>, e: &StoredEvent, tenant: Uuid) -> anyhow::Result<()> {
        let call: Uuid = e.aggregate_id.parse()?;
        let event = e.decode::<QueuedCallEvent>()?;
        match event {
            QueuedCallEvent::CallQueued { visit, queue_id, overflow_at, .. } => {
                if let Some(due) = overflow_at {
                    let visit = i32::try_from(visit).unwrap_or(0);
                    fx.set_timer(overflow_key(call, visit), due, json!({"call": call, "queue": queue_id}));
                }
                self.pending().queue(tenant, queue_id, Some(call));
                Ok(())
            }
            decided @ QueuedCallEvent::RoutingDecided { .. } => self.on_decided(fx, e, decided).await,
            QueuedCallEvent::CallOfferEnded { .. } => {
                fx.wait_for(entries::NAME).await?;
                let Some(entry) = entries::current(fx.pool(), tenant, call).await? else { return Ok(()) };
                if entry.status != "waiting" {
                    return Ok(());
                }
                if entry.overflow_at.is_some_and(|due| due <= Utc::now())
                    && self.overflow(fx, tenant, &entry).await?
                {
                    return Ok(());
                }
                self.pending().queue(tenant, entry.queue_id, None);
                Ok(())
            }
            QueuedCallEvent::CallAbandoned { visit, offer_id, agent_id, waited_ms, .. } => {
                left(fx, call, visit, "abandoned", waited_ms);
                if let (Some(offer), Some(agent)) = (offer_id, agent_id) {
                    let cancel = AgentCommand::CancelOffer {
                        offer_id: offer,
                        reason: Some("caller_left".into()),
                        at: Utc::now(),
                    };
                    if let Err(why) = self.agent_command(fx, "cancel", agent, cancel).await? {
                        tracing::debug!(%agent, %why, "offer already over");
                    }
                }
                Ok(())
            }
            QueuedCallEvent::CallAssigned { visit, waited_ms, .. } => {
                left(fx, call, visit, "assigned", waited_ms);
                Ok(())
            }
            QueuedCallEvent::CallOverflowed { visit, target, waited_ms, .. } => {
                left(fx, call, visit, "overflowed", waited_ms);
                let OverflowTarget::Queue { queue_id } = target else { return Ok(()) };
                let Some(entry) = entries::current(fx.pool(), tenant, call).await? else { return Ok(()) };
                let Some(next) = queues::get(fx.pool(), tenant, queue_id).await? else { return Ok(()) };
                let max_wait = next.settings()?.max_wait_seconds;
                let enqueue = QueuedCallCommand::Enqueue {
                    queue_id,
                    call: entry.call()?,
                    max_wait_seconds: max_wait,
                    at: Utc::now(),
                };
                self.call_command(fx, "overflow_enqueue", call, enqueue).await?;
                Ok(())
            }
        }
    }

    /// Overflows the call to its queue's target, if it has one; whether it did.
    async fn overflow(&self, fx: &mut Effects<'_>, tenant: Uuid, entry: &EntryRow) -> anyhow::Result<bool> {
        let Some(queue) = queues::get(fx.pool(), tenant, entry.queue_id).await? else { return Ok(false) };
        let target = queue.settings()?.overflow;
        if target == OverflowTarget::None {
            return Ok(false);
        }
        let command = QueuedCallCommand::Overflow { target, at: Utc::now() };
        self.call_command(fx, &format!("overflow:{}", entry.visit), entry.call_id, command).await
    }
}

/// The call left the queue: counts its wait and cancels the visit's timers.
fn left(fx: &mut Effects<'_>, call: Uuid, visit: u32, outcome: &'static str, waited_ms: u64) {
    metrics::histogram!(catalog::ROUTER_QUEUE_WAIT.name, "outcome" => outcome)
        .record(waited_ms as f64 / 1000.0);
    let visit = i32::try_from(visit).unwrap_or(0);
    fx.cancel_timer(overflow_key(call, visit));
    fx.cancel_timer(reroute_key(call, visit));
}

/// Whether a candidate could take a call now (ignoring what the call requires).
fn free(c: &Candidate) -> bool {
    !c.has_offer
        && c.active_calls < c.capacity
        && matches!(c.state, AgentState::Available | AgentState::OnCall)
}

/// The queue's members as candidates, in member order (teams expanded, each agent once).
async fn candidates(
    pool: &sqlx::PgPool,
    tenant: Uuid,
    settings: &QueueSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Candidate>> {
    let mut teams = HashMap::new();
    for m in &settings.members {
        if let QueueMember::Team { id } = *m {
            teams.insert(id, agents::team_agents(pool, tenant, id).await?);
        }
    }
    let order = settings.agent_order(|team| teams.get(&team).cloned().unwrap_or_default());
    let rows = agents::rows(pool, tenant, &order).await?;
    let offered = entries::offered_agents(pool, &order).await?;
    let by_id: HashMap<Uuid, &agents::AgentRow> = rows.iter().map(|r| (r.id, r)).collect();
    let mut out = Vec::with_capacity(order.len());
    for (index, id) in order.iter().enumerate() {
        if let Some(row) = by_id.get(id) {
            out.push(row.candidate(index, now, offered.contains(id))?);
        }
    }
    Ok(out)
}

#[async_trait]
impl ProcessManager for Router {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reads(&self) -> EventFilter {
        EventFilter::aggregates(&["QueuedCall"])
            .and_events(
                "Agent",
                &[
                    "AgentOfferAccepted",
                    "AgentOfferRejected",
                    "AgentOfferExpired",
                    "AgentOfferCancelled",
                    "AgentStateChanged",
                    "AgentWrapUpEnded",
                    "AgentCallEnded",
                    "AgentSkillsSet",
                    "AgentUpdated",
                ],
            )
            .and_events("Queue", &["QueueUpdated", "QueueMemberAdded"])
    }

    async fn handle(&self, e: &StoredEvent, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        let tenant = e.tenant()?;
        match e.aggregate_type.as_str() {
            "QueuedCall" => self.on_call_event(fx, e, tenant).await,
            "Agent" => {
                let agent: Uuid = e.aggregate_id.parse()?;
                let answer = |call, offer, outcome, at| Answer {
                    cause: fx.cause().clone(),
                    call,
                    agent,
                    offer,
                    outcome,
                    at,
                };
                match e.decode::<AgentEvent>()? {
                    AgentEvent::AgentOfferAccepted { offer_id, call_id, at, .. } => {
                        self.pending().answers.push(answer(call_id, offer_id, None, at));
                        Ok(())
                    }
                    AgentEvent::AgentOfferRejected { offer_id, call_id, at, .. } => {
                        let rejected = answer(call_id, offer_id, Some(OfferOutcome::Rejected), at);
                        self.pending().answers.push(rejected);
                        Ok(())
                    }
                    AgentEvent::AgentOfferExpired { offer_id, call_id, at, .. } => {
                        let expired = answer(call_id, offer_id, Some(OfferOutcome::Expired), at);
                        self.pending().answers.push(expired);
                        Ok(())
                    }
                    AgentEvent::AgentOfferCancelled { offer_id, call_id, at, .. } => {
                        // Withdrawn by someone else than the router (a supervisor): the call waits
                        // again. Withdrawn for an abandoned call: its entry has left already.
                        let cancelled = answer(call_id, offer_id, Some(OfferOutcome::Cancelled), at);
                        let mut pending = self.pending();
                        pending.answers.push(cancelled);
                        pending.agent(tenant, agent);
                        Ok(())
                    }
                    event => {
                        let state = event.state();
                        if matches!(state, AgentState::Available | AgentState::OnCall) {
                            self.pending().agent(tenant, agent);
                            Ok(())
                        } else {
                            Ok(())
                        }
                    }
                }
            }
            "Queue" => {
                self.pending().queue(tenant, e.aggregate_id.parse()?, None);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn end_batch(&self, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        self.route_pending(fx).await
    }

    async fn on_timer(&self, timer: &Timer, fx: &mut Effects<'_>) -> anyhow::Result<()> {
        let tenant: Uuid = timer.tenant_id.parse()?;
        let Some(call) = timer.payload["call"].as_str().and_then(|c| c.parse::<Uuid>().ok()) else {
            return Ok(());
        };
        let Some(entry) = entries::current(fx.pool(), tenant, call).await? else { return Ok(()) };
        let visit_of = |key: &str| key.rsplit(':').next().and_then(|v| v.parse::<i32>().ok());
        if visit_of(&timer.timer_key) != Some(entry.visit) || !entry.in_queue() {
            return Ok(());
        }
        if timer.timer_key.starts_with("overflow:") {
            // An offer pending: the overflow waits for its answer (see `CallOfferEnded`).
            if entry.status == "waiting" {
                self.overflow(fx, tenant, &entry).await?;
            }
            Ok(())
        } else if timer.timer_key.starts_with("reroute:") {
            self.route_queue(fx, tenant, entry.queue_id, &[]).await
        } else {
            Ok(())
        }
    }
}
