use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::settings::{QueueMember, QueueSettings};
use crate::CommandPolicy;

/// What can be asked of a queue.
// A command lives for one decision; boxing its settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum QueueCommand {
    /// Creates the queue.
    CreateQueue {
        /// Its settings, checked.
        settings: QueueSettings,
        /// When.
        at: DateTime<Utc>,
    },
    /// A JSON merge patch over the settings (a `members` array replaces the list).
    UpdateQueue {
        /// RFC 7396 merge patch.
        patch: Map<String, Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deletes the queue.
    DeleteQueue {
        /// When.
        at: DateTime<Utc>,
    },
    /// Adds a member at `position` (0-based; the end when absent or past it).
    AddQueueMember {
        /// The agent or team.
        member: QueueMember,
        /// Where in the round-robin order.
        position: Option<usize>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Removes a member.
    RemoveQueueMember {
        /// The agent or team.
        member: QueueMember,
        /// When.
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for QueueCommand {
    /// Every rule is re-checked against the newer state, so each command is safe to re-decide.
    fn name(&self) -> &'static str {
        match self {
            Self::CreateQueue { .. } => "CreateQueue",
            Self::UpdateQueue { .. } => "UpdateQueue",
            Self::DeleteQueue { .. } => "DeleteQueue",
            Self::AddQueueMember { .. } => "AddQueueMember",
            Self::RemoveQueueMember { .. } => "RemoveQueueMember",
        }
    }
}
