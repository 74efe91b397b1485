use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::settings::{QueueMember, QueueSettings};

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueueEvent {
    /// Created with these settings.
    QueueCreated { settings: QueueSettings, at: DateTime<Utc> },
    /// The whole settings after the change and the fields that changed.
    QueueUpdated { settings: QueueSettings, changed: Vec<String>, at: DateTime<Utc> },
    /// Deleted.
    QueueDeleted { at: DateTime<Utc> },
    /// A member added at `position`; `members` is the whole list after.
    QueueMemberAdded { member: QueueMember, position: usize, members: Vec<QueueMember>, at: DateTime<Utc> },
    /// A member removed from `position`; `members` is the whole list after.
    QueueMemberRemoved { member: QueueMember, position: usize, members: Vec<QueueMember>, at: DateTime<Utc> },
}

impl DomainEvent for QueueEvent {
    fn event_type(&self) -> String {
        match self {
            Self::QueueCreated { .. } => "QueueCreated",
            Self::QueueUpdated { .. } => "QueueUpdated",
            Self::QueueDeleted { .. } => "QueueDeleted",
            Self::QueueMemberAdded { .. } => "QueueMemberAdded",
            Self::QueueMemberRemoved { .. } => "QueueMemberRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
