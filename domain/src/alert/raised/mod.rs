//! One raised alert (`Alert`): raised by the alert engine when a rule fires, acknowledged by a
//! person, resolved by the engine (the value cleared, or the rule stopped) or by a person; every
//! notification attempt recorded. One stream per alert, so it stays small. Field names follow
//! the seed's alert (`alert_name, severity, status, metric_type, metric_name, threshold_value,
//! actual_value, message, triggered_at, acknowledged_at, resolved_at`).

mod commands;
mod error;
mod events;
#[cfg(test)]
mod tests;

pub use commands::AlertCommand;
pub use error::AlertError;
pub use events::AlertEvent;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::settings::{AlertRuleSettings, Comparator, Recipient, Severity};
use crate::metric::MetricType;

/// Where a raised alert stands (the seed's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RaisedStatus {
    /// Raised, nobody has acknowledged it.
    #[default]
    Active,
    /// Someone is on it.
    Acknowledged,
    /// Over.
    Resolved,
}

/// Why an alert was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResolveReason {
    /// The value cleared (the engine).
    Cleared,
    /// A person resolved it.
    Manual,
    /// Its rule was disabled, deleted or changed (the engine).
    RuleStopped,
}

/// What a raised alert says, fixed when it is raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertDetails {
    /// The rule that fired.
    pub rule_id: Uuid,
    /// Its version then.
    pub rule_version: u32,
    /// The rule's name.
    pub alert_name: String,
    /// How serious.
    pub severity: Severity,
    /// The metric's type.
    pub metric_type: MetricType,
    /// The metric or KPI.
    pub metric_name: String,
    /// The rule's threshold.
    pub threshold_value: f64,
    /// The rule's comparator.
    pub threshold_operator: Comparator,
    /// The value that fired it.
    pub actual_value: f64,
    /// A sentence for people.
    pub message: String,
    /// The scope it is about.
    pub team_id: Option<Uuid>,
    /// The scope it is about.
    pub agent_id: Option<Uuid>,
    /// The scope it is about.
    pub campaign_id: Option<Uuid>,
    /// The scope it is about.
    pub queue_id: Option<Uuid>,
    /// Dimension values of the series that fired.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dimensions: Map<String, Value>,
    /// When the breach began.
    pub breached_since: DateTime<Utc>,
}

impl AlertDetails {
    /// The details of a firing of `settings` (rule `rule_id` at `rule_version`) with `value`.
    pub fn fired(
        rule_id: Uuid,
        rule_version: u32,
        settings: &AlertRuleSettings,
        value: f64,
        breached_since: DateTime<Utc>,
        dimensions: Map<String, Value>,
    ) -> Self {
        let symbol = match settings.operator {
            Comparator::Gt => ">",
            Comparator::Lt => "<",
            Comparator::Eq => "=",
            Comparator::Gte => "≥",
            Comparator::Lte => "≤",
        };
        Self {
            rule_id,
            rule_version,
            alert_name: settings.name.clone(),
            severity: settings.severity,
            metric_type: settings.metric_type,
            metric_name: settings.metric_name.clone(),
            threshold_value: settings.threshold_value,
            threshold_operator: settings.operator,
            actual_value: value,
            message: format!(
                "{}: {} is {} ({} {})",
                settings.name, settings.metric_name, value, symbol, settings.threshold_value
            ),
            team_id: settings.team_id,
            agent_id: settings.agent_id,
            campaign_id: settings.campaign_id,
            queue_id: settings.queue_id,
            dimensions,
            breached_since,
        }
    }
}

/// How one notification attempt went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Accepted by the recipient (webhook 2xx, SMTP accepted).
    Delivered,
    /// Failed; tried again at `retry_at`, or given up when `None`.
    Failed {
        /// What went wrong (no secrets).
        error: String,
        /// The next attempt.
        retry_at: Option<DateTime<Utc>>,
    },
}

/// The most notification attempts per recipient.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 6;

/// How long to wait after failed attempt `attempt` (1-based): 5 s, 20 s, 80 s, … (×4), `None`
/// once [`MAX_DELIVERY_ATTEMPTS`] have failed.
pub fn retry_delay(attempt: u32) -> Option<Duration> {
    (1..MAX_DELIVERY_ATTEMPTS).contains(&attempt).then(|| Duration::seconds(5 * 4_i64.pow(attempt - 1)))
}

/// The raised-alert aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Raised (the stream exists).
    pub raised: bool,
    /// Where it stands.
    pub status: RaisedStatus,
    /// What it says.
    pub details: Option<AlertDetails>,
    /// When it was raised.
    pub triggered_at: Option<DateTime<Utc>>,
    /// Who acknowledged it, and when.
    pub acknowledged: Option<(Uuid, DateTime<Utc>)>,
    /// When it was resolved, why, and by whom (none: the engine).
    pub resolved: Option<(DateTime<Utc>, ResolveReason, Option<Uuid>)>,
    /// Recipients delivered to.
    pub delivered: Vec<Recipient>,
}

impl Alert {
    fn require_raised(&self) -> Result<(), AlertError> {
        if !self.raised {
            return Err(AlertError::NotFound);
        }
        Ok(())
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(&self, command: AlertCommand) -> Result<Vec<AlertEvent>, AlertError> {
        let event = match command {
            AlertCommand::RaiseAlert { details, at } => {
                if self.raised {
                    return Err(AlertError::AlreadyRaised);
                }
                if !details.actual_value.is_finite() || !details.threshold_value.is_finite() {
                    return Err(AlertError::NotFinite);
                }
                AlertEvent::AlertRaised { details, at }
            }
            AlertCommand::AcknowledgeAlert { by, note, at } => {
                self.require_raised()?;
                match self.status {
                    RaisedStatus::Resolved => return Err(AlertError::AlreadyResolved),
                    // The first acknowledgment is the one on record.
                    RaisedStatus::Acknowledged => return Ok(Vec::new()),
                    RaisedStatus::Active => {}
                }
                let note =
                    note.map(|n| n.trim().chars().take(2000).collect::<String>()).filter(|n| !n.is_empty());
                AlertEvent::AlertAcknowledged { by, note, at }
            }
            AlertCommand::ResolveAlert { reason, by, value, at } => {
                self.require_raised()?;
                if self.status == RaisedStatus::Resolved {
                    // The engine and a person may both resolve: the first one stands.
                    return Ok(Vec::new());
                }
                if reason == ResolveReason::Manual && by.is_none() {
                    return Err(AlertError::ResolverRequired);
                }
                AlertEvent::AlertResolved { reason, by, value: value.filter(|v| v.is_finite()), at }
            }
            AlertCommand::RecordNotification { recipient, attempt, outcome, at } => {
                self.require_raised()?;
                if self.delivered.contains(&recipient) {
                    return Ok(Vec::new());
                }
                match outcome {
                    DeliveryOutcome::Delivered => {
                        AlertEvent::AlertNotificationDelivered { recipient, attempt, at }
                    }
                    DeliveryOutcome::Failed { error, retry_at } => {
                        let error = error.chars().take(500).collect();
                        AlertEvent::AlertNotificationFailed { recipient, attempt, error, retry_at, at }
                    }
                }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Alert {
    const TYPE: &'static str = "Alert";
    type Command = AlertCommand;
    type Event = AlertEvent;
    type Error = AlertError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AlertCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AlertError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: AlertEvent) {
        match event {
            AlertEvent::AlertRaised { details, at } => {
                self.raised = true;
                self.status = RaisedStatus::Active;
                self.details = Some(details);
                self.triggered_at = Some(at);
            }
            AlertEvent::AlertAcknowledged { by, at, .. } => {
                self.status = RaisedStatus::Acknowledged;
                self.acknowledged = Some((by, at));
            }
            AlertEvent::AlertResolved { reason, by, at, .. } => {
                self.status = RaisedStatus::Resolved;
                self.resolved = Some((at, reason, by));
            }
            AlertEvent::AlertNotificationDelivered { recipient, .. } => self.delivered.push(recipient),
            AlertEvent::AlertNotificationFailed { .. } => {}
        }
    }
}
