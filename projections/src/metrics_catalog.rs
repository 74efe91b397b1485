//! Every metric the server exports, in one place: its name (with its unit), kind, unit, help,
//! labels and, for histograms, buckets. Emitters name metrics by these constants, the recorder
//! (`kraliki_api::telemetry`) describes and configures every entry of [`ALL`], and the README's
//! metrics table lists the same entries. It lives in the lowest crate that emits metrics, so
//! every crate above it names metrics from here.
//!
//! Conventions (`promtool check metrics` enforces the first two): counters end in `_total`,
//! durations are in seconds and say so (`_seconds`), gauges name what they count
//! (`_events`, `_calls`, `_requests`). Label values are bounded sets: route templates, never
//! raw paths; status classes, never codes.

use metrics::Unit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    /// The `# HELP` line: what one sample means.
    pub help: &'static str,
    /// Every label its samples carry (in this order in the docs; the exporter sorts nothing).
    pub labels: &'static [&'static str],
    /// Histograms only: the upper bounds of its buckets.
    pub buckets: &'static [f64],
    /// Where it is emitted (for the README table).
    pub source: &'static str,
}

/// Request, command and batch durations: half a millisecond to ten seconds.
pub const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How far behind something runs: a millisecond to five minutes.
pub const LAG_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// One media frame through the bridge: ten microseconds to a tenth of a second (a frame is
/// 20 ms of audio; anything near that is audible).
pub const FRAME_BUCKETS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    source: &'static str,
    help: &'static str,
) -> Metric {
    Metric { name, kind: Kind::Counter, unit: Unit::Count, help, labels, buckets: &[], source }
}

const fn gauge(
    name: &'static str,
    unit: Unit,
    labels: &'static [&'static str],
    source: &'static str,
    help: &'static str,
) -> Metric {
    Metric { name, kind: Kind::Gauge, unit, help, labels, buckets: &[], source }
}

const fn seconds(
    name: &'static str,
    buckets: &'static [f64],
    labels: &'static [&'static str],
    source: &'static str,
    help: &'static str,
) -> Metric {
    Metric { name, kind: Kind::Histogram, unit: Unit::Seconds, help, labels, buckets, source }
}

// HTTP (api).

pub const HTTP_REQUESTS: Metric = counter(
    "kraliki_http_requests_total",
    &["method", "route", "status_class"],
    "api",
    "HTTP requests answered, by matched route template (unmatched when no route matched), method and status class (2xx, 4xx, ...).",
);
pub const HTTP_REQUEST_DURATION: Metric = seconds(
    "kraliki_http_request_duration_seconds",
    DURATION_BUCKETS,
    &["method", "route", "status_class"],
    "api",
    "Time from a request's arrival to its response head (a streamed body or an upgraded WebSocket is not included).",
);
pub const HTTP_IN_FLIGHT: Metric = gauge(
    "kraliki_http_requests_in_flight",
    Unit::Count,
    &["method", "route"],
    "api",
    "HTTP requests being handled now (until their response head).",
);

// Commands (commands).

pub const COMMAND_DURATION: Metric = seconds(
    "kraliki_command_seconds",
    DURATION_BUCKETS,
    &["command", "status"],
    "commands",
    "Time to decide and append one command, by command and outcome (ok, rejected, conflict, idempotency_key_reused, error).",
);
pub const EVENTS_APPENDED: Metric = counter(
    "kraliki_events_appended_total",
    &["aggregate"],
    "commands",
    "Events appended to the event store, by aggregate type.",
);
pub const COMMAND_CONFLICTS: Metric = counter(
    "kraliki_command_conflicts_total",
    &["aggregate"],
    "commands",
    "Appends that lost an optimistic-concurrency race (retried or answered 409), by aggregate type.",
);

// Projections and process managers (projections; a process manager runs as a projection of
// its own name, so these cover both).

pub const PROJECTION_EVENTS: Metric = counter(
    "kraliki_projection_events_total",
    &["projection"],
    "projections",
    "Events applied by a projection or process manager (committed with its checkpoint).",
);
pub const PROJECTION_ERRORS: Metric = counter(
    "kraliki_projection_errors_total",
    &["projection"],
    "projections",
    "Batches of a projection or process manager that failed and were rolled back (retried).",
);
pub const PROJECTION_BATCH_DURATION: Metric = seconds(
    "kraliki_projection_batch_seconds",
    DURATION_BUCKETS,
    &["projection"],
    "projections",
    "Time to apply one batch of events and commit it with the checkpoint.",
);
pub const PROJECTION_APPLY_LAG: Metric = seconds(
    "kraliki_projection_apply_lag_seconds",
    LAG_BUCKETS,
    &["projection"],
    "projections",
    "Time from the newest event of a batch being recorded to the batch being committed.",
);
pub const PROJECTION_LAG_EVENTS: Metric = gauge(
    "kraliki_projection_lag_events",
    Unit::Count,
    &["projection"],
    "projections",
    "Events in the log not yet applied by the serving build of a projection or process manager (counted up to a million; refreshed at each scrape).",
);
pub const PROJECTION_LAG_SECONDS: Metric = gauge(
    "kraliki_projection_lag_seconds",
    Unit::Seconds,
    &["projection"],
    "projections",
    "Age of the oldest event not yet applied by the serving build (0 when caught up; refreshed at each scrape).",
);
pub const BARRIER_AGE: Metric = gauge(
    "kraliki_barrier_age_seconds",
    Unit::Seconds,
    &[],
    "projections",
    "Age of the oldest open transaction holding a transaction id: catch-up cannot read past it (refreshed at each scrape).",
);

// Process managers (commands).

pub const PROCESS_EVENTS: Metric =
    counter("kraliki_process_events_total", &["manager"], "commands", "Events a process manager reacted to.");
pub const PROCESS_COMMANDS: Metric = counter(
    "kraliki_process_commands_total",
    &["manager", "status"],
    "commands",
    "Commands a process manager issued, by outcome (ok, replayed, rejected, error).",
);
pub const PROCESS_TIMER_ERRORS: Metric = counter(
    "kraliki_process_timer_errors_total",
    &["manager"],
    "commands",
    "Batches of due timers of a process manager that failed (retried).",
);
pub const PROCESS_TIMER_LATENESS: Metric = seconds(
    "kraliki_process_timer_lateness_seconds",
    LAG_BUCKETS,
    &["manager"],
    "commands",
    "How long after its due time a timer was handled.",
);

// Router (commands).

pub const ROUTER_DECISIONS: Metric = counter(
    "kraliki_router_decisions_total",
    &["outcome"],
    "commands",
    "Routing decisions recorded, by outcome (offered: a winner was offered the call; none: nobody could take it).",
);
pub const ROUTER_OFFERS: Metric = counter(
    "kraliki_router_offers_total",
    &["outcome"],
    "commands",
    "Offers the router made that ended, by outcome (accepted, rejected, expired, cancelled, unavailable).",
);
pub const ROUTER_QUEUE_WAIT: Metric = seconds(
    "kraliki_router_queue_wait_seconds",
    LAG_BUCKETS,
    &["outcome"],
    "commands",
    "Time a call spent in a queue, by how it left (assigned, abandoned, overflowed).",
);
pub const ROUTER_OFFER_LATENCY: Metric = seconds(
    "kraliki_router_offer_latency_seconds",
    LAG_BUCKETS,
    &[],
    "commands",
    "From a routing decision's clock to its winner's reservation being appended (the decision recorded, read back from the log, the agent reserved).",
);

// Voice (voice).

pub const VOICE_ACTIVE_CALLS: Metric = gauge(
    "kraliki_voice_active_calls",
    Unit::Count,
    &["provider", "carrier"],
    "voice",
    "Calls whose media stream is bridged to a voice agent on this instance now, by voice-AI provider and carrier.",
);
pub const BRIDGE_FRAME_LATENCY: Metric = seconds(
    "kraliki_bridge_frame_latency_seconds",
    FRAME_BUCKETS,
    &["direction"],
    "voice",
    "Time from a media frame read on one side of the bridge to its write on the other (caller_to_agent, agent_to_caller).",
);
pub const VOICE_PROVIDER_CONNECT_FAILURES: Metric = counter(
    "kraliki_voice_provider_connect_failures_total",
    &["provider", "reason"],
    "voice",
    "Voice-AI sessions that could not be opened for a call, by provider and reason (not_configured, config, connect, rejected, timeout, other).",
);
pub const CARRIER_DIAL_FAILURES: Metric = counter(
    "kraliki_carrier_dial_failures_total",
    &["carrier"],
    "voice",
    "Outbound calls the carrier (twilio, telnyx) did not take.",
);
pub const WEBHOOK_COMMANDS_REFUSED: Metric = counter(
    "kraliki_webhook_commands_refused_total",
    &["provider", "command"],
    "voice",
    "Carrier webhook commands the call refused (a step already passed or an ended call).",
);
pub const CALL_STEPS_LOST: Metric = counter(
    "kraliki_call_steps_lost_total",
    &["command"],
    "voice",
    "Call steps (transcript, DTMF, function calls) given up after the event store failed for several seconds.",
);

// Dialer (voice).

pub const DIALER_CALLS_PLACED: Metric =
    counter("kraliki_dialer_calls_placed_total", &[], "voice", "Calls the dialer placed with a carrier.");
pub const DIALER_DIAL_REFUSALS: Metric = counter(
    "kraliki_dialer_dial_refusals_total",
    &[],
    "voice",
    "Calls the dialer tried to place that were refused (by the carrier or a last check); the round stops there.",
);
pub const DIALER_ROUNDS: Metric = counter(
    "kraliki_dialer_rounds_total",
    &["outcome"],
    "voice",
    "Dialer rounds of one campaign, by outcome (placed, refused, repeated, no_room, no_contacts, not_dialing, no_carrier, failed).",
);
pub const DIALER_CAMPAIGNS_ACTIVE: Metric = gauge(
    "kraliki_dialer_campaigns_active",
    Unit::Count,
    &[],
    "voice",
    "Campaigns that dial by themselves now: active, outbound, progressive or predictive, inside their start and end time (all tenants; refreshed at each scrape).",
);

/// Voice-AI providers (`provider` label of the voice metrics).
pub const VOICE_PROVIDERS: &[&str] = &["openai", "gemini", "deepgram"];
/// Carriers (`carrier` label).
pub const CARRIERS: &[&str] = &["twilio", "telnyx"];
/// `reason` of [`VOICE_PROVIDER_CONNECT_FAILURES`].
pub const CONNECT_FAILURE_REASONS: &[&str] =
    &["not_configured", "config", "connect", "rejected", "timeout", "other"];
/// `outcome` of [`DIALER_ROUNDS`].
pub const DIALER_ROUND_OUTCOMES: &[&str] =
    &["placed", "refused", "repeated", "no_room", "no_contacts", "not_dialing", "no_carrier", "failed"];

/// Every metric, grouped as the README lists them.
pub const ALL: &[Metric] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    HTTP_IN_FLIGHT,
    COMMAND_DURATION,
    EVENTS_APPENDED,
    COMMAND_CONFLICTS,
    PROJECTION_EVENTS,
    PROJECTION_ERRORS,
    PROJECTION_BATCH_DURATION,
    PROJECTION_APPLY_LAG,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
    BARRIER_AGE,
    PROCESS_EVENTS,
    PROCESS_COMMANDS,
    PROCESS_TIMER_ERRORS,
    PROCESS_TIMER_LATENESS,
    ROUTER_DECISIONS,
    ROUTER_OFFERS,
    ROUTER_QUEUE_WAIT,
    ROUTER_OFFER_LATENCY,
    VOICE_ACTIVE_CALLS,
    BRIDGE_FRAME_LATENCY,
    VOICE_PROVIDER_CONNECT_FAILURES,
    CARRIER_DIAL_FAILURES,
    WEBHOOK_COMMANDS_REFUSED,
    CALL_STEPS_LOST,
    DIALER_CALLS_PLACED,
    DIALER_DIAL_REFUSALS,
    DIALER_ROUNDS,
    DIALER_CAMPAIGNS_ACTIVE,
];

/// The entry named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

/// Describes every metric to the installed recorder (HELP and unit); call once after
/// installing it.
pub fn describe_all() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
}

/// Registers, at zero, the series that alerts and dashboards compute rates of: a counter that
/// first appears at 1 has no `increase()` to show for that first failure or call.
pub fn start_at_zero() {
    metrics::counter!(DIALER_CALLS_PLACED.name).increment(0);
    metrics::counter!(DIALER_DIAL_REFUSALS.name).increment(0);
    for outcome in DIALER_ROUND_OUTCOMES {
        metrics::counter!(DIALER_ROUNDS.name, "outcome" => *outcome).increment(0);
    }
    for provider in VOICE_PROVIDERS {
        for reason in CONNECT_FAILURE_REASONS {
            metrics::counter!(VOICE_PROVIDER_CONNECT_FAILURES.name, "provider" => *provider, "reason" => *reason)
                .increment(0);
        }
        for carrier in CARRIERS {
            metrics::gauge!(VOICE_ACTIVE_CALLS.name, "provider" => *provider, "carrier" => *carrier)
                .increment(0.0);
        }
    }
    for carrier in CARRIERS {
        metrics::counter!(CARRIER_DIAL_FAILURES.name, "carrier" => *carrier).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The suffix a name must carry for its unit (`None`: a count, named by what it counts).
    fn unit_suffix(m: &Metric) -> Option<&'static str> {
        match m.unit {
            Unit::Count => None,
            Unit::Seconds => Some("_seconds"),
            Unit::Bytes => Some("_bytes"),
            other => panic!("{}: use seconds, bytes or a count, not {other:?}", m.name),
        }
    }

    fn snake(s: &str) -> bool {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !s.starts_with('_')
            && !s.ends_with('_')
            && !s.contains("__")
    }

    #[test]
    fn names_are_unique_prefixed_and_snake_case() {
        let mut seen = HashSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "{} is listed twice", m.name);
            assert!(m.name.starts_with("kraliki_"), "{}", m.name);
            assert!(snake(m.name), "{} is not snake_case", m.name);
        }
    }

    #[test]
    fn every_name_carries_its_kind_and_unit() {
        for m in ALL {
            let base = m.name.strip_suffix("_total");
            assert_eq!(base.is_some(), m.kind == Kind::Counter, "{}: only counters end in _total", m.name);
            let base = base.unwrap_or(m.name);
            match unit_suffix(m) {
                Some(suffix) => assert!(
                    base.ends_with(suffix),
                    "{} is in {:?}: its name must end in {suffix}",
                    m.name,
                    m.unit
                ),
                None => {
                    for unit in ["_seconds", "_bytes"] {
                        assert!(
                            !base.ends_with(unit),
                            "{} ends in {unit} but its unit is {:?}",
                            m.name,
                            m.unit
                        );
                    }
                }
            }
            // Abbreviated or non-base units never appear (promtool's rule too).
            for word in m.name.split('_') {
                assert!(
                    ![
                        "ms",
                        "millis",
                        "milliseconds",
                        "sec",
                        "secs",
                        "us",
                        "ns",
                        "minutes",
                        "hours",
                        "kb",
                        "mb"
                    ]
                    .contains(&word),
                    "{}: use base units, spelled out",
                    m.name
                );
            }
        }
    }

    #[test]
    fn histograms_measure_seconds_in_increasing_buckets() {
        for m in ALL {
            if m.kind == Kind::Histogram {
                assert_eq!(m.unit, Unit::Seconds, "{}", m.name);
                assert!(!m.buckets.is_empty(), "{} has no buckets", m.name);
                assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}: buckets must increase", m.name);
                assert!(m.buckets[0] > 0.0, "{}", m.name);
            } else {
                assert!(m.buckets.is_empty(), "{}: only histograms have buckets", m.name);
            }
        }
    }

    #[test]
    fn help_says_something_and_labels_are_plain() {
        for m in ALL {
            assert!(m.help.len() >= 20 && m.help.ends_with('.'), "{}: write a sentence", m.name);
            assert!(!m.help.contains('\n') && !m.help.contains('\\'), "{}: one plain line", m.name);
            let mut labels = HashSet::new();
            for label in m.labels {
                assert!(snake(label), "{}: label {label}", m.name);
                assert!(!["le", "quantile"].contains(label), "{}: {label} is the exporter's", m.name);
                assert!(labels.insert(label), "{}: label {label} twice", m.name);
            }
            assert!(["api", "commands", "projections", "voice"].contains(&m.source), "{}", m.name);
        }
    }

    #[test]
    fn find_answers_listed_names_only() {
        assert_eq!(find("kraliki_http_requests_total").map(|m| m.kind), Some(Kind::Counter));
        assert!(find("kraliki_http_requests").is_none());
    }
}
