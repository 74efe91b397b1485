//! A team: a named group of users (agents and the people who run them) with a supervisor, a
//! time zone and business hours. Queues take teams as members; performance rolls up per team.

mod commands;
mod error;
mod events;
pub mod settings;
#[cfg(test)]
mod tests;

pub use commands::TeamCommand;
pub use error::TeamError;
pub use events::TeamEvent;
pub use settings::{MemberRole, TeamSettings};

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The team aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// Created.
    pub created: bool,
    /// Deleted.
    pub deleted: bool,
    /// The settings.
    pub settings: TeamSettings,
    /// User → role.
    pub members: BTreeMap<Uuid, MemberRole>,
}

impl Team {
    fn require_exists(&self) -> Result<(), TeamError> {
        if !self.created || self.deleted {
            return Err(TeamError::NotFound);
        }
        Ok(())
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(&self, command: TeamCommand) -> Result<Vec<TeamEvent>, TeamError> {
        let event = match command {
            TeamCommand::CreateTeam { settings, at } => {
                if self.created {
                    return Err(TeamError::AlreadyExists);
                }
                let settings = settings.validated().map_err(TeamError::InvalidSettings)?;
                TeamEvent::TeamCreated { settings, at }
            }
            TeamCommand::UpdateTeam { patch, at } => {
                self.require_exists()?;
                let settings = self.settings.patched(&patch).map_err(TeamError::InvalidSettings)?;
                let changed = self.settings.changed_fields(&settings);
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                TeamEvent::TeamUpdated { settings, changed, at }
            }
            TeamCommand::DeleteTeam { at } => {
                self.require_exists()?;
                TeamEvent::TeamDeleted { at }
            }
            TeamCommand::AddTeamMember { user_id, role, at } => {
                self.require_exists()?;
                match self.members.get(&user_id) {
                    Some(r) if *r == role => return Ok(Vec::new()),
                    Some(r) => return Err(TeamError::AlreadyMember { user_id, role: *r }),
                    None => TeamEvent::TeamMemberAdded { user_id, role, at },
                }
            }
            TeamCommand::ChangeMemberRole { user_id, role, at } => {
                self.require_exists()?;
                match self.members.get(&user_id) {
                    None => return Err(TeamError::NotMember(user_id)),
                    Some(r) if *r == role => return Ok(Vec::new()),
                    Some(r) => TeamEvent::TeamMemberRoleChanged { user_id, role, from: *r, at },
                }
            }
            TeamCommand::RemoveTeamMember { user_id, at } => {
                self.require_exists()?;
                let role = *self.members.get(&user_id).ok_or(TeamError::NotMember(user_id))?;
                TeamEvent::TeamMemberRemoved { user_id, role, at }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Team {
    const TYPE: &'static str = "Team";
    type Command = TeamCommand;
    type Event = TeamEvent;
    type Error = TeamError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TeamCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), TeamError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: TeamEvent) {
        match event {
            TeamEvent::TeamCreated { settings, .. } => {
                self.created = true;
                self.settings = settings;
            }
            TeamEvent::TeamUpdated { settings, .. } => self.settings = settings,
            TeamEvent::TeamDeleted { .. } => self.deleted = true,
            TeamEvent::TeamMemberAdded { user_id, role, .. }
            | TeamEvent::TeamMemberRoleChanged { user_id, role, .. } => {
                self.members.insert(user_id, role);
            }
            TeamEvent::TeamMemberRemoved { user_id, .. } => {
                self.members.remove(&user_id);
            }
        }
    }
}
