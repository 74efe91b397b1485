//! The company: a tenant of the platform. Created, renamed, its profile edited, deactivated.

mod commands;
mod error;
mod events;
#[cfg(test)]
mod tests;

pub use commands::{CompanyCommand, CompanyProfile, ProfilePatch};
pub use error::CompanyError;
pub use events::CompanyEvent;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    pub created: bool,
    pub name: String,
    pub domain: String,
    pub is_active: bool,
    pub size: Option<crate::values::CompanySize>,
    pub industry: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl Company {
    fn profile(&self) -> CompanyProfile {
        CompanyProfile {
            domain: self.domain.clone(),
            size: self.size,
            industry: self.industry.clone(),
            description: self.description.clone(),
            website: self.website.clone(),
        }
    }

    fn require_active(&self) -> Result<(), CompanyError> {
        if !self.created {
            return Err(CompanyError::NotFound);
        }
        if !self.is_active {
            return Err(CompanyError::Deactivated);
        }
        Ok(())
    }
}

impl Aggregate for Company {
    const TYPE: &'static str = "Company";
    type Command = CompanyCommand;
    type Event = CompanyEvent;
    type Error = CompanyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CompanyCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), CompanyError> {
        match command {
            CompanyCommand::CreateCompany { name, profile, at } => {
                if self.created {
                    return Err(CompanyError::AlreadyExists);
                }
                let event = CompanyEvent::CompanyCreated {
                    name: name.as_str().to_owned(),
                    domain: profile.domain,
                    size: profile.size,
                    industry: profile.industry,
                    description: profile.description,
                    website: profile.website,
                    at,
                };
                sink.write(event, self).await;
            }
            CompanyCommand::RenameCompany { name, at } => {
                self.require_active()?;
                if name.as_str() != self.name {
                    let previous = self.name.clone();
                    let event = CompanyEvent::CompanyRenamed { name: name.as_str().to_owned(), previous, at };
                    sink.write(event, self).await;
                }
            }
            CompanyCommand::UpdateCompany { name, profile, at } => {
                self.require_active()?;
                if let Some(name) = name.filter(|n| n.as_str() != self.name) {
                    let previous = self.name.clone();
                    let event = CompanyEvent::CompanyRenamed { name: name.as_str().to_owned(), previous, at };
                    sink.write(event, self).await;
                }
                let merged = profile.merged_onto(self.profile());
                if merged != self.profile() {
                    let event = CompanyEvent::CompanyProfileUpdated {
                        domain: merged.domain,
                        size: merged.size,
                        industry: merged.industry,
                        description: merged.description,
                        website: merged.website,
                        at,
                    };
                    sink.write(event, self).await;
                }
            }
            CompanyCommand::DeactivateCompany { reason, at } => {
                if !self.created {
                    return Err(CompanyError::NotFound);
                }
                if !self.is_active {
                    return Err(CompanyError::AlreadyDeactivated);
                }
                sink.write(CompanyEvent::CompanyDeactivated { reason, at }, self).await;
            }
            CompanyCommand::ReactivateCompany { at } => {
                if !self.created {
                    return Err(CompanyError::NotFound);
                }
                if self.is_active {
                    return Err(CompanyError::NotDeactivated);
                }
                sink.write(CompanyEvent::CompanyReactivated { at }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: CompanyEvent) {
        match event {
            CompanyEvent::CompanyCreated { name, domain, size, industry, description, website, .. } => {
                self.created = true;
                self.is_active = true;
                self.name = name;
                self.domain = domain;
                self.size = size;
                self.industry = industry;
                self.description = description;
                self.website = website;
            }
            CompanyEvent::CompanyRenamed { name, .. } => self.name = name,
            CompanyEvent::CompanyProfileUpdated { domain, size, industry, description, website, .. } => {
                self.domain = domain;
                self.size = size;
                self.industry = industry;
                self.description = description;
                self.website = website;
            }
            CompanyEvent::CompanyDeactivated { at, .. } => {
                self.is_active = false;
                self.deactivated_at = Some(at);
            }
            CompanyEvent::CompanyReactivated { .. } => {
                self.is_active = true;
                self.deactivated_at = None;
            }
        }
    }
}
