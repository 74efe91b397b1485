use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AlertDetails, DeliveryOutcome, ResolveReason};
use crate::alert::settings::Recipient;
use crate::CommandPolicy;

/// What can be asked of a raised alert.
// A command lives for one decision; boxing its details would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AlertCommand {
    /// The engine raises it (a rule fired).
    RaiseAlert {
        /// What it says.
        details: AlertDetails,
        /// When.
        at: DateTime<Utc>,
    },
    /// A person acknowledges it (nothing when acknowledged already).
    AcknowledgeAlert {
        /// The user.
        by: Uuid,
        /// Up to 2000 characters.
        note: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Resolves it (nothing when resolved already).
    ResolveAlert {
        /// Why.
        reason: ResolveReason,
        /// The user, for a manual resolution; none for the engine.
        by: Option<Uuid>,
        /// The clearing value, if any.
        value: Option<f64>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A notification attempt's outcome (nothing once that recipient has it).
    RecordNotification {
        /// Who.
        recipient: Recipient,
        /// 1-based.
        attempt: u32,
        /// How it went.
        outcome: DeliveryOutcome,
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for AlertCommand {
    /// Each rule is re-checked against the newer state (a second acknowledgment or resolution
    /// changes nothing), so every command is safe to re-decide.
    fn name(&self) -> &'static str {
        match self {
            Self::RaiseAlert { .. } => "RaiseAlert",
            Self::AcknowledgeAlert { .. } => "AcknowledgeAlert",
            Self::ResolveAlert { .. } => "ResolveAlert",
            Self::RecordNotification { .. } => "RecordNotification",
        }
    }
}
