//! What the voice AI on a call may do: its functions, and transfers carried out at the carrier.

use async_trait::async_trait;
use chrono::Utc;
use kraliki_commands::{CommandContext, DispatchError};
use kraliki_domain::call::{CallCommand, TransferTarget};
use kraliki_domain::queued_call::{QueuedCall, QueuedCallCommand, QueuedCallError};
use kraliki_domain::routing::CallToRoute;
use serde_json::{json, Value};
use uuid::Uuid;

use super::CallService;
use crate::ai::ToolSpec;
use crate::bridge::{CallController, Dialect, Ending, FunctionResult, Recorder};
use crate::telephony::telnyx_control::{CommandId, Enqueue};
use crate::telephony::twilio_rest::CallInstructions;
use crate::telephony::twiml::VoiceResponse;

/// The functions every AI agent is offered.
pub fn call_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "transfer_to_queue".into(),
            description: "Transfer the caller to a human agent queue.".into(),
            parameters: json!({"type": "object", "properties": {
                "queue": {"type": "string", "description": "Queue name or id"},
                "reason": {"type": "string"},
                "summary": {"type": "string", "description": "What the human agent should know about the caller and the call so far"}},
                "required": ["queue"]}),
        },
        ToolSpec {
            name: "end_call".into(),
            description: "End the call, with its outcome (disposition) such as sale, not_interested, callback_requested, wrong_number.".into(),
            parameters: json!({"type": "object", "properties": {
                "disposition": {"type": "string"}, "summary": {"type": "string"}}, "required": ["disposition"]}),
        },
        ToolSpec {
            name: "schedule_callback".into(),
            description: "Schedule a call back to this contact at a given time (RFC 3339).".into(),
            parameters: json!({"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time"}, "note": {"type": "string"}}, "required": ["at"]}),
        },
        ToolSpec {
            name: "lookup_contact".into(),
            description: "Look up what is known about the person on the call.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

/// The AI agent's functions on one call.
pub struct AgentFunctions {
    pub service: CallService,
    pub dialect: Dialect,
    pub tenant: Uuid,
    pub call_id: Uuid,
    /// Twilio `CallSid` / Telnyx `call_control_id` of the caller's leg.
    pub provider_call_id: String,
    /// What is known about the person called (`lookup_contact`).
    pub contact: Option<Value>,
}

#[async_trait]
impl CallController for AgentFunctions {
    fn tools(&self) -> Vec<ToolSpec> {
        call_tools()
    }

    async fn call_function(&self, recorder: &Recorder, name: &str, args: &Value) -> FunctionResult {
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
        let reply = |result: Value| FunctionResult { result, ending: None };
        match name {
            "end_call" => {
                if let Some(summary) = text("summary") {
                    recorder.record(CallCommand::SummarizeCall { summary, at: Utc::now() }).await;
                }
                let disposition = text("disposition").unwrap_or_else(|| "completed".into());
                FunctionResult {
                    result: json!({"ok": true}),
                    ending: Some(Ending::Completed { disposition: Some(disposition.to_lowercase()) }),
                }
            }
            "transfer_to_queue" => match text("queue") {
                Some(queue) => {
                    // A warm transfer: the note for the human goes with the call.
                    if let Some(summary) = text("summary") {
                        recorder.record(CallCommand::SummarizeCall { summary, at: Utc::now() }).await;
                    }
                    let target = TransferTarget::Queue { queue: queue.clone() };
                    recorder
                        .record(CallCommand::RequestTransfer {
                            target: target.clone(),
                            reason: text("reason"),
                            at: Utc::now(),
                        })
                        .await;
                    FunctionResult {
                        result: json!({"ok": true, "queue": queue}),
                        ending: Some(Ending::Transferred { target }),
                    }
                }
                None => reply(json!({"ok": false, "error": "queue is required"})),
            },
            "schedule_callback" => match text("at")
                .and_then(|a| chrono::DateTime::parse_from_rfc3339(&a).ok())
            {
                Some(when) => {
                    let command = CallCommand::ScheduleCallback {
                        callback_at: when.with_timezone(&Utc),
                        note: text("note"),
                        at: Utc::now(),
                    };
                    match recorder.execute(command).await {
                        Ok(_) => reply(json!({"ok": true, "at": when.to_rfc3339(), "note": text("note")})),
                        Err(DispatchError::Rejected(e)) => {
                            reply(json!({"ok": false, "error": e.to_string()}))
                        }
                        Err(e) => {
                            tracing::warn!(call = %self.call_id, error = %e, "could not schedule a callback");
                            reply(json!({"ok": false, "error": "the callback could not be saved; try again"}))
                        }
                    }
                }
                None => reply(json!({"ok": false, "error": "at must be an RFC 3339 time"})),
            },
            "lookup_contact" => match &self.contact {
                Some(contact) => reply(json!({"ok": true, "contact": contact})),
                None => reply(json!({"ok": false, "error": "the caller is not a known contact"})),
            },
            other => reply(json!({"ok": false, "error": format!("unknown function {other}")})),
        }
    }

    /// A queue transfer to one of the company's queues (by name or id) enters it — the router
    /// offers the caller to an agent — and holds the caller at the carrier in a queue of their
    /// own ([`super::agent_legs`]). Any other queue name goes to the carrier's queue named
    /// `<tenant>:<queue>` (at most 64 characters, Twilio's limit) as before: Twilio runs
    /// `<Enqueue>`, Telnyx `enqueue`s.
    async fn transfer(&self, target: &TransferTarget) -> Result<(), String> {
        let TransferTarget::Queue { queue } = target else {
            return Err(format!("the AI agent cannot transfer to {}", target.describe()));
        };
        if matches!(self.dialect, Dialect::Twilio | Dialect::Telnyx) {
            let entered = self.service.enter_queue(
                self.tenant,
                self.call_id,
                queue,
                Entering::default(),
                "system:voice-agent",
            );
            if let Some(ours) = entered.await? {
                tracing::info!(call = %self.call_id, queue = %ours, "transferred into our queue");
                let held = match self.dialect {
                    Dialect::Telnyx => {
                        self.service.hold_caller_telnyx(self.call_id, &self.provider_call_id).await
                    }
                    _ => self.service.hold_caller(self.call_id, &self.provider_call_id).await,
                };
                return held.map_err(|e| e.to_string());
            }
        }
        let name: String = format!("{}:{queue}", self.tenant).chars().take(64).collect();
        match self.dialect {
            Dialect::Twilio => {
                let twiml = VoiceResponse::new().enqueue(name).to_xml();
                self.service
                    .twilio()
                    .map_err(|e| e.to_string())?
                    .redirect_call(&self.provider_call_id, CallInstructions::Twiml(twiml))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Dialect::Telnyx => {
                let id = CommandId::parse(format!("enqueue-{}", self.call_id)).map_err(|e| e.to_string())?;
                self.service
                    .telnyx()
                    .map_err(|e| e.to_string())?
                    .enqueue(&self.provider_call_id, &Enqueue::new(name), &id)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Dialect::Browser => Err("a browser session has no carrier to transfer it".into()),
        }
    }
}

/// What a call brings into a queue besides the queue's own requirements.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entering {
    pub priority: i32,
    /// Skill → level, on top of the queue's.
    pub skills: std::collections::BTreeMap<String, u8>,
    /// The caller's language, when the queue names none.
    pub language: Option<String>,
    /// Shorter than the queue's longest wait.
    pub max_wait_seconds: Option<u32>,
    /// What the router may match on (the IVR's variables).
    pub attributes: serde_json::Map<String, Value>,
}

impl CallService {
    /// Puts the call in the company's queue `name` (by name or id), if there is one: its id.
    /// A call waiting in it already (a repeated request) is in it.
    pub(crate) async fn enter_queue(
        &self,
        tenant: Uuid,
        call_id: Uuid,
        name: &str,
        entering: Entering,
        actor: &str,
    ) -> Result<Option<Uuid>, String> {
        let pool = self.pool();
        let Some(row) =
            kraliki_projections::queue::find(pool, tenant, name).await.map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let settings = row.settings().map_err(|e| e.to_string())?;
        let now = Utc::now();
        let mut required_skills = settings.required_skills.clone();
        for (skill, level) in entering.skills {
            let at_least = required_skills.entry(skill).or_insert(level);
            *at_least = (*at_least).max(level);
        }
        let call = CallToRoute {
            call_id,
            queue_id: Some(row.id),
            priority: entering.priority,
            arrived_at: now,
            waited_ms: 0,
            required_skills,
            required_language: settings.language.clone().or(entering.language),
            vip: false,
            preferred_agent: None,
            attributes: entering.attributes,
        };
        let max_wait_seconds =
            entering.max_wait_seconds.map_or(settings.max_wait_seconds, |w| w.min(settings.max_wait_seconds));
        let command = QueuedCallCommand::Enqueue { queue_id: row.id, call, max_wait_seconds, at: now };
        let ctx = CommandContext::new(tenant.to_string(), actor);
        match self.dispatcher().execute::<QueuedCall>(&call_id.to_string(), command, &ctx).await {
            Ok(_) => Ok(Some(row.id)),
            Err(DispatchError::Rejected(QueuedCallError::AlreadyQueued { queue_id, .. }))
                if queue_id == row.id =>
            {
                Ok(Some(row.id))
            }
            Err(DispatchError::Rejected(why)) => Err(why.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}
