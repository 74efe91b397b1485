//! A person who works in a company (a tenant): registered, given roles, deactivated. Password
//! hashes are not in the events (the log is exported and published); the credential store
//! keeps them, and `PasswordChanged` records that and when a password changed.

mod commands;
mod error;
mod events;
#[cfg(test)]
mod tests;

pub use commands::UserCommand;
pub use error::UserError;
pub use events::UserEvent;

use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::values::Role;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub registered: bool,
    pub company_id: String,
    pub email: String,
    pub full_name: String,
    pub roles: BTreeSet<Role>,
    pub is_active: bool,
    pub password_version: u32,
}

impl User {
    fn require_active(&self) -> Result<(), UserError> {
        if !self.registered {
            return Err(UserError::NotFound);
        }
        if !self.is_active {
            return Err(UserError::Deactivated);
        }
        Ok(())
    }

    /// The role that names the user in tokens: the most powerful one held.
    pub fn primary_role(&self) -> Option<Role> {
        self.roles.iter().copied().max()
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "User";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: UserCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), UserError> {
        match command {
            UserCommand::RegisterUser { company_id, email, full_name, roles, at } => {
                if self.registered {
                    return Err(UserError::AlreadyExists);
                }
                if roles.is_empty() {
                    return Err(UserError::NoRole);
                }
                let event = UserEvent::UserRegistered {
                    company_id,
                    email: email.as_str().to_owned(),
                    full_name: full_name.as_str().to_owned(),
                    roles: roles.into_iter().collect(),
                    at,
                };
                sink.write(event, self).await;
            }
            UserCommand::GrantRole { role, at } => {
                self.require_active()?;
                if !self.roles.contains(&role) {
                    sink.write(UserEvent::RoleGranted { role, at }, self).await;
                }
            }
            UserCommand::RevokeRole { role, at } => {
                self.require_active()?;
                if self.roles.contains(&role) {
                    if self.roles.len() == 1 {
                        return Err(UserError::LastRole);
                    }
                    sink.write(UserEvent::RoleRevoked { role, at }, self).await;
                }
            }
            UserCommand::RecordPasswordChange { at } => {
                self.require_active()?;
                sink.write(UserEvent::PasswordChanged { at }, self).await;
            }
            UserCommand::RenameUser { full_name, at } => {
                self.require_active()?;
                if full_name.as_str() != self.full_name {
                    sink.write(UserEvent::UserRenamed { full_name: full_name.as_str().to_owned(), at }, self)
                        .await;
                }
            }
            UserCommand::DeactivateUser { at } => {
                self.require_active()?;
                sink.write(UserEvent::UserDeactivated { at }, self).await;
            }
            UserCommand::ReactivateUser { at } => {
                if !self.registered {
                    return Err(UserError::NotFound);
                }
                if self.is_active {
                    return Err(UserError::NotDeactivated);
                }
                sink.write(UserEvent::UserReactivated { at }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::UserRegistered { company_id, email, full_name, roles, .. } => {
                self.registered = true;
                self.is_active = true;
                self.company_id = company_id;
                self.email = email;
                self.full_name = full_name;
                self.roles = roles.into_iter().collect();
            }
            UserEvent::RoleGranted { role, .. } => {
                self.roles.insert(role);
            }
            UserEvent::RoleRevoked { role, .. } => {
                self.roles.remove(&role);
            }
            UserEvent::PasswordChanged { .. } => self.password_version += 1,
            UserEvent::UserRenamed { full_name, .. } => self.full_name = full_name,
            UserEvent::UserDeactivated { .. } => self.is_active = false,
            UserEvent::UserReactivated { .. } => self.is_active = true,
        }
    }
}
