//! A queue: where calls wait for agents. Its settings say how callers are ordered, how agents
//! are picked (a queue strategy, optionally overridden by an engine strategy), the service
//! level, limits and overflow; its members (agents and teams) are in round-robin order.
//! Waiting calls themselves live on the read side and in the router, not in this stream.

mod commands;
mod error;
mod events;
pub mod settings;
#[cfg(test)]
mod tests;

pub use commands::QueueCommand;
pub use error::QueueError;
pub use events::QueueEvent;
pub use settings::{OverflowTarget, QueueMember, QueueSettings, ServiceLevel};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

/// The queue aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// Created.
    pub created: bool,
    /// Deleted.
    pub deleted: bool,
    /// The settings (members included).
    pub settings: QueueSettings,
}

impl Queue {
    fn require_exists(&self) -> Result<(), QueueError> {
        if !self.created || self.deleted {
            return Err(QueueError::NotFound);
        }
        Ok(())
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(&self, command: QueueCommand) -> Result<Vec<QueueEvent>, QueueError> {
        let event = match command {
            QueueCommand::CreateQueue { settings, at } => {
                if self.created {
                    return Err(QueueError::AlreadyExists);
                }
                let settings = settings.validated().map_err(QueueError::InvalidSettings)?;
                QueueEvent::QueueCreated { settings, at }
            }
            QueueCommand::UpdateQueue { patch, at } => {
                self.require_exists()?;
                let settings = self.settings.patched(&patch).map_err(QueueError::InvalidSettings)?;
                let changed = self.settings.changed_fields(&settings);
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                QueueEvent::QueueUpdated { settings, changed, at }
            }
            QueueCommand::DeleteQueue { at } => {
                self.require_exists()?;
                QueueEvent::QueueDeleted { at }
            }
            QueueCommand::AddQueueMember { member, position, at } => {
                self.require_exists()?;
                if self.settings.members.contains(&member) {
                    return Err(QueueError::AlreadyMember(member));
                }
                if member.id().is_nil() {
                    return Err(QueueError::InvalidSettings(vec![crate::values::InvalidValue::new(
                        "id",
                        "required",
                        "a member id",
                    )]));
                }
                let mut members = self.settings.members.clone();
                let position = position.unwrap_or(members.len()).min(members.len());
                members.insert(position, member);
                QueueEvent::QueueMemberAdded { member, position, members, at }
            }
            QueueCommand::RemoveQueueMember { member, at } => {
                self.require_exists()?;
                let position = self
                    .settings
                    .members
                    .iter()
                    .position(|m| *m == member)
                    .ok_or(QueueError::NotMember(member))?;
                let mut members = self.settings.members.clone();
                members.remove(position);
                QueueEvent::QueueMemberRemoved { member, position, members, at }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Queue {
    const TYPE: &'static str = "Queue";
    type Command = QueueCommand;
    type Event = QueueEvent;
    type Error = QueueError;
    type Services = ();

    async fn handle(
        &mut self,
        command: QueueCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), QueueError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: QueueEvent) {
        match event {
            QueueEvent::QueueCreated { settings, .. } => {
                self.created = true;
                self.settings = settings;
            }
            QueueEvent::QueueUpdated { settings, .. } => self.settings = settings,
            QueueEvent::QueueDeleted { .. } => self.deleted = true,
            QueueEvent::QueueMemberAdded { members, .. } | QueueEvent::QueueMemberRemoved { members, .. } => {
                self.settings.members = members
            }
        }
    }
}
