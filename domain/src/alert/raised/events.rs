use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AlertDetails, ResolveReason};
use crate::alert::settings::Recipient;

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlertEvent {
    /// Raised (status active): the seed's `triggered_at` is `at`.
    AlertRaised { details: AlertDetails, at: DateTime<Utc> },
    /// Acknowledged by a user.
    AlertAcknowledged { by: Uuid, note: Option<String>, at: DateTime<Utc> },
    /// Resolved: by the engine (`by` none) or a user.
    AlertResolved { reason: ResolveReason, by: Option<Uuid>, value: Option<f64>, at: DateTime<Utc> },
    /// A recipient has the notification.
    AlertNotificationDelivered { recipient: Recipient, attempt: u32, at: DateTime<Utc> },
    /// An attempt failed; `retry_at` is when to try again (none: given up).
    AlertNotificationFailed {
        recipient: Recipient,
        attempt: u32,
        error: String,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for AlertEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AlertRaised { .. } => "AlertRaised",
            Self::AlertAcknowledged { .. } => "AlertAcknowledged",
            Self::AlertResolved { .. } => "AlertResolved",
            Self::AlertNotificationDelivered { .. } => "AlertNotificationDelivered",
            Self::AlertNotificationFailed { .. } => "AlertNotificationFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
