//! A seeded discrete-event simulation of one campaign's day, paced by the same code the dialer
//! calls ([`lines_to_dial`], [`check_dial`], [`waiting_call_action`], [`answer_action`]), so that
//! its figures are the dialer's. Deterministic for a seed; `kraliki bench --only pacing` runs it.
//!
//! Model: agents stay logged in all day. Each interval the dialer samples, plans and dials
//! through the gate. A dial reaches a person with `human_answer_rate`, a machine with the share
//! `machine_share` of all answers, else nobody; answers come after a uniform delay (3–25 s) and
//! rings stop at the ring timeout. A person gets a free agent (longest idle first) or waits; with
//! no agent within 2 s the call is abandoned. Talk is exponential or lognormal, then a fixed
//! wrap-up. Unanswered and machine-retried contacts are called again after the campaign's retry
//! delays; fresh contacts are unlimited.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use super::compliance::{
    answer_action, answer_probability_bound, check_dial, retry_delay, waiting_call_action, AbandonmentCounts,
    AmdOutcome, AnswerAction, ComplianceConfig, DialCheck, DialDecision, MachineAction, RetryReason,
    WaitingCallAction, AGENT_CONNECT_DEADLINE_MS,
};
use super::predictive::{DropStats, PredictiveConfig, PredictiveState};
use super::{lines_to_dial, DialerView, LineCounts, LineLimits};
use crate::campaign::{DialingMode, RetryDelays};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "distribution")]
pub enum TalkTime {
    Exponential {
        mean_seconds: f64,
    },
    /// `sigma` of the underlying normal; the mean is kept at `mean_seconds`.
    LogNormal {
        mean_seconds: f64,
        sigma: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub seed: u64,
    pub mode: DialingMode,
    pub agents: u32,
    /// Share of dials a person answers.
    pub human_answer_rate: f64,
    /// Share of answers that are machines (0: none).
    pub machine_share: f64,
    /// Share of people AMD takes for machines (they get the machine treatment; Ofcom counts them
    /// as abandoned). The gate's `amd_false_positive_rate` is set from it: the share of machine
    /// detections that were people, as a campaign's reasoned estimate would give it.
    pub amd_false_positive_rate: f64,
    pub machine_action: MachineAction,
    pub voicemail_seconds: f64,
    pub ring_timeout_seconds: u32,
    /// Answers come uniformly within this range after the dial.
    pub answer_after_seconds: (f64, f64),
    pub talk: TalkTime,
    pub wrap_up_seconds: f64,
    pub interval_ms: u64,
    pub day_seconds: u64,
    pub limits: LineLimits,
    pub predictive: PredictiveConfig,
    pub compliance: ComplianceConfig,
    pub retry_delays: RetryDelays,
    pub max_attempts: u32,
    pub start: DateTime<Utc>,
    pub trace_every_seconds: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            mode: DialingMode::Predictive,
            agents: 50,
            human_answer_rate: 0.35,
            machine_share: 0.0,
            amd_false_positive_rate: 0.0,
            machine_action: MachineAction::VoicemailDrop,
            voicemail_seconds: 20.0,
            ring_timeout_seconds: 25,
            answer_after_seconds: (3.0, 25.0),
            talk: TalkTime::Exponential { mean_seconds: 180.0 },
            wrap_up_seconds: 15.0,
            interval_ms: 1_000,
            day_seconds: 8 * 3600,
            limits: LineLimits::new(10_000, 10_000),
            predictive: PredictiveConfig::default(),
            compliance: ComplianceConfig::default(),
            retry_delays: RetryDelays::default(),
            max_attempts: 3,
            start: DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::hours(8),
            trace_every_seconds: 60,
        }
    }
}

/// One point of the level trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LevelPoint {
    pub minute: u32,
    /// The predictive level (1.0 for progressive).
    pub level: f64,
    /// Live calls ÷ agents: the level actually dialed at.
    pub live_per_agent: f64,
    /// Abandoned ÷ answered by a person, so far today.
    pub abandonment_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub dials: u64,
    pub answered_human: u64,
    pub answered_machine: u64,
    /// Calls an agent took.
    pub handled: u64,
    /// No agent within 2 s, plus people AMD took for machines.
    pub abandoned: u64,
    /// abandoned ÷ answered_human at the end of the day.
    pub abandonment_rate: f64,
    /// The highest day-so-far abandonment rate at any moment.
    pub max_day_abandonment_rate: f64,
    /// (talk + wrap-up) ÷ logged-in time.
    pub occupancy: f64,
    /// Mean idle time before each call an agent took.
    pub average_agent_wait_seconds: f64,
    pub calls_per_agent_hour: f64,
    /// Dials the abandonment budget refused (the dialer fell back to progressive).
    pub refused_over_dials: u64,
    pub level_trace: Vec<LevelPoint>,
}

/// Runs one simulated day.
pub fn simulate(config: &SimConfig) -> SimReport {
    Sim::new(config).run()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Nobody,
    Person,
    Machine { person: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Resolved { contact: u32, answer: Answer },
    Deadline { call: u64 },
    TalkEnd,
    WrapEnd { agent: u32 },
    VoicemailEnd,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    call: u64,
    contact: u32,
    greeting_ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Contact {
    attempts: u32,
    last_abandoned_ms: Option<u64>,
}

struct Sim<'a> {
    config: &'a SimConfig,
    compliance: ComplianceConfig,
    rng: ChaCha8Rng,
    now: u64,
    end: u64,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    /// Idle agents with the time they became idle, longest idle first.
    idle: VecDeque<(u32, u64)>,
    ringing: u32,
    waiting: VecDeque<Waiting>,
    with_agent: u32,
    voicemails: u32,
    contacts: Vec<Contact>,
    retries: BinaryHeap<Reverse<(u64, u32)>>,
    next_call: u64,
    state: PredictiveState,
    // What the dialer knows (its read models).
    dials: u64,
    resolved: u64,
    counts: AbandonmentCounts,
    minute_answered: VecDeque<u64>,
    minute_dropped: VecDeque<u64>,
    // What really happened.
    answered_human: u64,
    abandoned: u64,
    max_rate: f64,
    handled: u64,
    busy_ms: u64,
    wait_ms: u64,
    refused: u64,
    trace: Vec<LevelPoint>,
}

impl<'a> Sim<'a> {
    fn new(config: &'a SimConfig) -> Self {
        let agents = config.agents;
        let mut compliance = config.compliance;
        let people = config.human_answer_rate.clamp(0.0, 1.0);
        let machines = answer_share(config) - people;
        let mistaken = people * config.amd_false_positive_rate.clamp(0.0, 1.0);
        compliance.amd_false_positive_rate =
            if mistaken > 0.0 { mistaken / (mistaken + machines.max(0.0)) } else { 0.0 };
        Self {
            config,
            compliance,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            now: 0,
            end: config.day_seconds * 1000,
            events: BinaryHeap::new(),
            seq: 0,
            idle: (0..agents).map(|a| (a, 0)).collect(),
            ringing: 0,
            waiting: VecDeque::new(),
            with_agent: 0,
            voicemails: 0,
            contacts: Vec::new(),
            retries: BinaryHeap::new(),
            next_call: 0,
            state: PredictiveState::default(),
            dials: 0,
            resolved: 0,
            counts: AbandonmentCounts::default(),
            minute_answered: VecDeque::new(),
            minute_dropped: VecDeque::new(),
            answered_human: 0,
            abandoned: 0,
            max_rate: 0.0,
            handled: 0,
            busy_ms: 0,
            wait_ms: 0,
            refused: 0,
            trace: Vec::new(),
        }
    }

    fn run(mut self) -> SimReport {
        let interval = self.config.interval_ms.max(1);
        let trace_every = self.config.trace_every_seconds.max(1) * 1000;
        let mut tick = 0;
        while tick < self.end {
            while let Some(&Reverse((at, _, event))) = self.events.peek() {
                if at > tick {
                    break;
                }
                self.events.pop();
                self.now = at;
                self.handle(event);
            }
            self.now = tick;
            self.pace();
            if tick % trace_every == 0 {
                self.record_trace();
            }
            tick += interval;
        }
        self.report()
    }

    fn report(self) -> SimReport {
        let agents = f64::from(self.config.agents.max(1));
        let day_ms = self.end.max(1) as f64;
        let rate = |abandoned: u64, answered: u64| {
            if answered == 0 {
                0.0
            } else {
                abandoned as f64 / answered as f64
            }
        };
        SimReport {
            dials: self.dials,
            answered_human: self.answered_human,
            answered_machine: self.counts.machine_detected,
            handled: self.handled,
            abandoned: self.abandoned,
            abandonment_rate: rate(self.abandoned, self.answered_human),
            max_day_abandonment_rate: self.max_rate,
            occupancy: self.busy_ms as f64 / (agents * day_ms),
            average_agent_wait_seconds: if self.handled == 0 {
                0.0
            } else {
                self.wait_ms as f64 / 1000.0 / self.handled as f64
            },
            calls_per_agent_hour: self.handled as f64 / (agents * day_ms / 3_600_000.0),
            refused_over_dials: self.refused,
            level_trace: self.trace,
        }
    }

    fn at(&self, ms: u64) -> DateTime<Utc> {
        self.config.start + Duration::milliseconds(ms as i64)
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn talk_ms(&mut self) -> u64 {
        let seconds = match self.config.talk {
            TalkTime::Exponential { mean_seconds } => -mean_seconds * (1.0 - self.uniform()).ln(),
            TalkTime::LogNormal { mean_seconds, sigma } => {
                // Box–Muller.
                let (u1, u2) = (1.0 - self.uniform(), self.uniform());
                let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let mu = mean_seconds.max(f64::MIN_POSITIVE).ln() - sigma * sigma / 2.0;
                (mu + sigma * normal).exp()
            }
        };
        seconds_to_ms(seconds)
    }

    fn view(&self) -> DialerView {
        let waiting = self.waiting.len() as u32;
        DialerView {
            agents: self.config.agents,
            idle_agents: self.idle.len() as u32,
            waiting_calls: waiting,
            counts: LineCounts {
                in_flight: self.ringing + waiting,
                live: self.ringing + waiting + self.with_agent + self.voicemails,
            },
            drops: DropStats {
                minute_answered: self.minute_answered.len() as u64,
                minute_dropped: self.minute_dropped.len() as u64,
                today_calls: self.dials,
                today_answered: self.counts.live_answered,
                today_dropped: self.counts.abandoned,
            },
        }
    }

    fn pace(&mut self) {
        let now = self.now;
        for window in [&mut self.minute_answered, &mut self.minute_dropped] {
            while window.front().is_some_and(|&t| t + 60_000 <= now) {
                window.pop_front();
            }
        }
        let view = self.view();
        let config = self.config;
        let lines = lines_to_dial(config.mode, &mut self.state, &view, &config.predictive, config.limits);
        for _ in 0..lines {
            let (retry, contact) = match self.retries.peek() {
                Some(&Reverse((due, contact))) if due <= self.now => (true, contact),
                _ => (false, self.contacts.len() as u32),
            };
            let last_abandoned_ms = self.contacts.get(contact as usize).and_then(|c| c.last_abandoned_ms);
            let check = DialCheck {
                at: self.at(self.now),
                ring_timeout_seconds: config.ring_timeout_seconds,
                last_abandoned_at: last_abandoned_ms.map(|ms| self.at(ms)),
                today: self.counts,
                // One simulated day: the 30 days are today.
                last_30_days: self.counts,
                ringing: self.ringing,
                waiting_calls: self.waiting.len() as u32,
                idle_agents: self.idle.len() as u32,
                human_answer_probability: answer_probability_bound(self.resolved, self.counts.live_answered),
            };
            match check_dial(&check, &self.compliance) {
                DialDecision::Allowed => {
                    if retry {
                        self.retries.pop();
                    } else {
                        self.contacts.push(Contact::default());
                    }
                    self.dial(contact);
                }
                DialDecision::Refused(reason) if reason.is_about_the_number() => {
                    // Only a retried contact can carry an abandonment: back to its queue, later.
                    self.retries.pop();
                    let again = last_abandoned_ms.unwrap_or(self.now)
                        + retry_delay(RetryReason::Abandoned, &config.retry_delays).num_milliseconds() as u64;
                    self.retries.push(Reverse((again, contact)));
                }
                DialDecision::Refused(_) => {
                    self.refused += 1;
                    break;
                }
            }
        }
    }

    fn dial(&mut self, contact: u32) {
        self.dials += 1;
        self.ringing += 1;
        self.contacts[contact as usize].attempts += 1;
        let config = self.config;
        let human = config.human_answer_rate.clamp(0.0, 1.0);
        let answered = answer_share(config);
        let u = self.uniform();
        let mut answer = if u < human {
            Answer::Person
        } else if u < answered {
            Answer::Machine { person: false }
        } else {
            Answer::Nobody
        };
        if answer == Answer::Person && self.uniform() < config.amd_false_positive_rate {
            answer = Answer::Machine { person: true };
        }
        let (low, high) = config.answer_after_seconds;
        let ring_timeout = u64::from(config.ring_timeout_seconds) * 1000;
        let mut after = if answer == Answer::Nobody {
            ring_timeout
        } else {
            seconds_to_ms(low + (high - low).max(0.0) * self.uniform())
        };
        if after > ring_timeout {
            answer = Answer::Nobody;
            after = ring_timeout;
        }
        self.schedule(self.now + after, Event::Resolved { contact, answer });
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Resolved { contact, answer } => self.resolved(contact, answer),
            Event::Deadline { call } => {
                let Some(&front) = self.waiting.front() else { return };
                if front.call != call {
                    return; // connected in time
                }
                let free = !self.idle.is_empty();
                match waiting_call_action(self.at(front.greeting_ms), self.at(self.now), free) {
                    WaitingCallAction::KeepWaiting => {}
                    WaitingCallAction::ConnectAgent => {
                        self.waiting.pop_front();
                        if let Some((agent, since)) = self.idle.pop_front() {
                            self.wait_ms += self.now - since;
                            self.connect(agent);
                        }
                    }
                    WaitingCallAction::Abandon => {
                        self.waiting.pop_front();
                        self.abandon(front.contact);
                    }
                }
            }
            Event::TalkEnd => self.with_agent -= 1,
            Event::WrapEnd { agent } => self.agent_free(agent),
            Event::VoicemailEnd => self.voicemails -= 1,
        }
    }

    fn resolved(&mut self, contact: u32, answer: Answer) {
        self.ringing -= 1;
        self.resolved += 1;
        let config = self.config;
        let outcome = match answer {
            Answer::Nobody => {
                self.retry(contact, RetryReason::NoAnswer);
                return;
            }
            Answer::Person => AmdOutcome::Human,
            Answer::Machine { .. } => AmdOutcome::Machine,
        };
        match answer_action(outcome, config.machine_action) {
            AnswerAction::ConnectAgent => {
                self.counts.live_answered += 1;
                self.answered_human += 1;
                self.minute_answered.push_back(self.now);
                self.next_call += 1;
                let call = Waiting { call: self.next_call, contact, greeting_ms: self.now };
                let now = self.at(self.now);
                match waiting_call_action(now, now, !self.idle.is_empty()) {
                    WaitingCallAction::ConnectAgent => {
                        if let Some((agent, since)) = self.idle.pop_front() {
                            self.wait_ms += self.now - since;
                            self.connect(agent);
                        }
                    }
                    _ => {
                        self.waiting.push_back(call);
                        let deadline = self.now + AGENT_CONNECT_DEADLINE_MS as u64;
                        self.schedule(deadline, Event::Deadline { call: call.call });
                    }
                }
            }
            action => {
                self.counts.machine_detected += 1;
                if matches!(answer, Answer::Machine { person: true }) {
                    // A person AMD hung up on or left a message to: abandoned (Ofcom).
                    self.answered_human += 1;
                    self.count_abandoned();
                }
                if action == AnswerAction::VoicemailDrop {
                    self.voicemails += 1;
                    let end = self.now + seconds_to_ms(config.voicemail_seconds);
                    self.schedule(end, Event::VoicemailEnd);
                } else {
                    self.retry(contact, RetryReason::Machine);
                }
            }
        }
    }

    fn abandon(&mut self, contact: u32) {
        // The caller hears the campaign's identification message; the number rests 72 h.
        self.counts.abandoned += 1;
        self.minute_dropped.push_back(self.now);
        self.contacts[contact as usize].last_abandoned_ms = Some(self.now);
        self.count_abandoned();
        self.retry(contact, RetryReason::Abandoned);
    }

    fn count_abandoned(&mut self) {
        self.abandoned += 1;
        let rate = self.abandoned as f64 / self.answered_human.max(1) as f64;
        self.max_rate = self.max_rate.max(rate);
    }

    fn retry(&mut self, contact: u32, reason: RetryReason) {
        if self.contacts[contact as usize].attempts < self.config.max_attempts {
            let due = self.now + retry_delay(reason, &self.config.retry_delays).num_milliseconds() as u64;
            if due < self.end {
                self.retries.push(Reverse((due, contact)));
            }
        }
    }

    fn agent_free(&mut self, agent: u32) {
        while let Some(&front) = self.waiting.front() {
            match waiting_call_action(self.at(front.greeting_ms), self.at(self.now), true) {
                WaitingCallAction::ConnectAgent => {
                    self.waiting.pop_front();
                    self.connect(agent);
                    return;
                }
                // Its deadline event is due at this very moment: it is lost already.
                _ => {
                    self.waiting.pop_front();
                    self.abandon(front.contact);
                }
            }
        }
        self.idle.push_back((agent, self.now));
    }

    fn connect(&mut self, agent: u32) {
        self.handled += 1;
        self.with_agent += 1;
        let talk = self.talk_ms();
        let wrap = seconds_to_ms(self.config.wrap_up_seconds);
        self.schedule(self.now + talk, Event::TalkEnd);
        self.schedule(self.now + talk + wrap, Event::WrapEnd { agent });
        self.busy_ms += (self.now + talk + wrap).min(self.end).saturating_sub(self.now);
    }

    fn record_trace(&mut self) {
        let view = self.view();
        let level = if self.config.mode == DialingMode::Predictive { self.state.level } else { 1.0 };
        self.trace.push(LevelPoint {
            minute: (self.now / 60_000) as u32,
            level,
            live_per_agent: f64::from(view.counts.live) / f64::from(self.config.agents.max(1)),
            abandonment_rate: if self.answered_human == 0 {
                0.0
            } else {
                self.abandoned as f64 / self.answered_human as f64
            },
        });
    }
}

/// Share of dials anyone or anything answers.
fn answer_share(config: &SimConfig) -> f64 {
    let human = config.human_answer_rate.clamp(0.0, 1.0);
    (human / (1.0 - config.machine_share.clamp(0.0, 0.999))).min(1.0)
}

fn seconds_to_ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}
