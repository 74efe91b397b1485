//! "Test this flow" (`POST /api/ivr/flows/{id}/test`): a call through a flow with scripted
//! inputs and a given start time, answering the path taken, every step and effect, and the
//! variables at the end. Webhooks are not called: the script says what they answered.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::flow::Flow;
use super::interpreter::{
    step, CallStart, Effect, EndReason, Input, IvrStep, Session, SessionStatus, Waiting,
};

/// Most scripted inputs a simulation takes; the rest are reported unused.
pub const MAX_SIMULATION_INPUTS: usize = 1000;

/// One scripted input, `after_seconds` after the previous one (moves the clock conditions read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScriptedInput {
    /// The input (`{"type": "digits", "digits": "1"}`).
    #[serde(flatten)]
    pub input: Input,
    /// Seconds since the previous input.
    #[serde(default)]
    pub after_seconds: u32,
}

impl From<Input> for ScriptedInput {
    fn from(input: Input) -> Self {
        Self { input, after_seconds: 0 }
    }
}

/// A simulated call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Simulation {
    /// What the call brings (caller number, language, variables).
    pub call: CallStart,
    /// When the call starts (now, when absent).
    pub start_at: Option<DateTime<Utc>>,
    /// The inputs, in order.
    pub inputs: Vec<ScriptedInput>,
}

/// What one input did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraceStep {
    /// The input (the first is `call_started`).
    pub input: Input,
    /// The clock at the input.
    pub at: DateTime<Utc>,
    /// What happened.
    pub steps: Vec<IvrStep>,
    /// What the telephony layer would have done.
    pub effects: Vec<Effect>,
}

/// The simulation's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trace {
    /// Node ids entered, in order (repeats included).
    pub path: Vec<String>,
    /// Input by input.
    pub steps: Vec<TraceStep>,
    /// Variables at the end.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: BTreeMap<String, Value>,
    /// Ended or still waiting.
    pub status: SessionStatus,
    /// What it still waits for, when the script ran out first.
    pub waiting_for: Option<Waiting>,
    /// Where it waits or ended.
    pub node_id: Option<String>,
    /// How it ended.
    pub ended: Option<EndReason>,
    /// Scripted inputs left after the call ended (or past [`MAX_SIMULATION_INPUTS`]).
    pub unused_inputs: usize,
    /// Nodes entered.
    pub visits: u32,
}

/// Runs `simulation` through `flow`. `now` is the clock when the simulation gives no start.
pub fn simulate(flow: &Flow, simulation: &Simulation, now: DateTime<Utc>) -> Trace {
    let mut at = simulation.start_at.unwrap_or(now);
    let mut session = Session::default();
    let mut trace_steps = Vec::new();
    let mut path = Vec::new();
    let scripted =
        simulation.inputs.iter().take(MAX_SIMULATION_INPUTS).map(|s| (s.input.clone(), s.after_seconds));
    let all = std::iter::once((Input::CallStarted(simulation.call.clone()), 0)).chain(scripted);
    let mut used = 0usize;
    for (input, after) in all {
        if session.status == SessionStatus::Ended {
            break;
        }
        at += Duration::seconds(i64::from(after));
        let outcome = step(flow, &session, input.clone(), at);
        for s in &outcome.steps {
            if let IvrStep::NodeEntered { node_id, .. } = s {
                path.push(node_id.clone());
            }
        }
        session = outcome.session;
        trace_steps.push(TraceStep { input, at, steps: outcome.steps, effects: outcome.effects });
        used += 1;
    }
    // `used` counts the call_started input too.
    let unused_inputs = simulation.inputs.len().saturating_sub(used.saturating_sub(1));
    Trace {
        path,
        steps: trace_steps,
        variables: session.variables,
        status: session.status,
        waiting_for: session.waiting,
        node_id: session.node_id,
        ended: session.ended,
        unused_inputs,
        visits: session.visits,
    }
}
