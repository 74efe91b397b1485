//! A service account: a non-human caller of a company (a telephony worker, an orchestrator)
//! that authenticates with API keys. The keys' secrets live hashed in the credential store;
//! the events record which keys exist and when they were revoked.

mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::values::Role;
use crate::CommandPolicy;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub created: bool,
    pub company_id: String,
    pub name: String,
    pub roles: BTreeSet<Role>,
    pub is_active: bool,
    /// Keys that authenticate: key id → prefix shown to people.
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceAccountCommand {
    CreateServiceAccount { company_id: String, name: String, roles: BTreeSet<Role>, at: DateTime<Utc> },
    IssueApiKey { key_id: String, prefix: String, at: DateTime<Utc> },
    RevokeApiKey { key_id: String, at: DateTime<Utc> },
    DeactivateServiceAccount { at: DateTime<Utc> },
}

impl CommandPolicy for ServiceAccountCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::CreateServiceAccount { .. } => "CreateServiceAccount",
            Self::IssueApiKey { .. } => "IssueApiKey",
            Self::RevokeApiKey { .. } => "RevokeApiKey",
            Self::DeactivateServiceAccount { .. } => "DeactivateServiceAccount",
        }
    }
}

/// Stored forever: never rename a variant; a changed shape gets a new version and an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServiceAccountEvent {
    ServiceAccountCreated { company_id: String, name: String, roles: Vec<Role>, at: DateTime<Utc> },
    ApiKeyIssued { key_id: String, prefix: String, at: DateTime<Utc> },
    ApiKeyRevoked { key_id: String, at: DateTime<Utc> },
    ServiceAccountDeactivated { at: DateTime<Utc> },
}

impl DomainEvent for ServiceAccountEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ServiceAccountCreated { .. } => "ServiceAccountCreated",
            Self::ApiKeyIssued { .. } => "ApiKeyIssued",
            Self::ApiKeyRevoked { .. } => "ApiKeyRevoked",
            Self::ServiceAccountDeactivated { .. } => "ServiceAccountDeactivated",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAccountError {
    #[error("a service account with this id already exists")]
    AlreadyExists,
    #[error("service account not found")]
    NotFound,
    #[error("the service account is deactivated")]
    Deactivated,
    #[error("a service account needs at least one role")]
    NoRole,
    #[error("no such active key")]
    UnknownKey,
}

impl ServiceAccount {
    fn require_active(&self) -> Result<(), ServiceAccountError> {
        if !self.created {
            return Err(ServiceAccountError::NotFound);
        }
        if !self.is_active {
            return Err(ServiceAccountError::Deactivated);
        }
        Ok(())
    }
}

impl Aggregate for ServiceAccount {
    const TYPE: &'static str = "ServiceAccount";
    type Command = ServiceAccountCommand;
    type Event = ServiceAccountEvent;
    type Error = ServiceAccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ServiceAccountCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ServiceAccountError> {
        match command {
            ServiceAccountCommand::CreateServiceAccount { company_id, name, roles, at } => {
                if self.created {
                    return Err(ServiceAccountError::AlreadyExists);
                }
                if roles.is_empty() {
                    return Err(ServiceAccountError::NoRole);
                }
                let event = ServiceAccountEvent::ServiceAccountCreated {
                    company_id,
                    name,
                    roles: roles.into_iter().collect(),
                    at,
                };
                sink.write(event, self).await;
            }
            ServiceAccountCommand::IssueApiKey { key_id, prefix, at } => {
                self.require_active()?;
                if !self.keys.contains_key(&key_id) {
                    sink.write(ServiceAccountEvent::ApiKeyIssued { key_id, prefix, at }, self).await;
                }
            }
            ServiceAccountCommand::RevokeApiKey { key_id, at } => {
                if !self.created {
                    return Err(ServiceAccountError::NotFound);
                }
                if !self.keys.contains_key(&key_id) {
                    return Err(ServiceAccountError::UnknownKey);
                }
                sink.write(ServiceAccountEvent::ApiKeyRevoked { key_id, at }, self).await;
            }
            ServiceAccountCommand::DeactivateServiceAccount { at } => {
                self.require_active()?;
                // Deactivation revokes every key first, so the log says so explicitly.
                let keys: Vec<String> = self.keys.keys().cloned().collect();
                for key_id in keys {
                    sink.write(ServiceAccountEvent::ApiKeyRevoked { key_id, at }, self).await;
                }
                sink.write(ServiceAccountEvent::ServiceAccountDeactivated { at }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: ServiceAccountEvent) {
        match event {
            ServiceAccountEvent::ServiceAccountCreated { company_id, name, roles, .. } => {
                self.created = true;
                self.is_active = true;
                self.company_id = company_id;
                self.name = name;
                self.roles = roles.into_iter().collect();
            }
            ServiceAccountEvent::ApiKeyIssued { key_id, prefix, .. } => {
                self.keys.insert(key_id, prefix);
            }
            ServiceAccountEvent::ApiKeyRevoked { key_id, .. } => {
                self.keys.remove(&key_id);
            }
            ServiceAccountEvent::ServiceAccountDeactivated { .. } => self.is_active = false,
        }
    }
}
