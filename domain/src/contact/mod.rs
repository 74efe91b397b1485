//! A contact: someone a campaign may call. Created one by one (this aggregate's
//! `ContactCreated`) or in bulk by an import (a [`crate::contact_import`] batch event holds
//! thousands of them). An imported contact's own stream starts with its first change; the
//! command layer hands the aggregate the imported data it knows ([`ContactCommand`]'s `known`).

mod data;
#[cfg(test)]
mod tests;

pub use data::{ConsentStatus, ContactData, ContactInput, TimeZoneSource};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::InvalidValue;
use crate::CommandPolicy;

#[derive(Debug, Clone, PartialEq)]
pub enum ContactCommand {
    CreateContact {
        data: ContactData,
        at: DateTime<Utc>,
    },
    /// `known`: the contact as an import created it, when its own stream is still empty.
    UpdateContact {
        patch: Map<String, Value>,
        known: Option<ContactData>,
        at: DateTime<Utc>,
    },
    SetDoNotCall {
        reason: Option<String>,
        known: Option<ContactData>,
        at: DateTime<Utc>,
    },
    ClearDoNotCall {
        known: Option<ContactData>,
        at: DateTime<Utc>,
    },
    DeleteContact {
        known: Option<ContactData>,
        at: DateTime<Utc>,
    },
}

impl ContactCommand {
    fn known(&self) -> Option<&ContactData> {
        match self {
            Self::CreateContact { .. } => None,
            Self::UpdateContact { known, .. }
            | Self::SetDoNotCall { known, .. }
            | Self::ClearDoNotCall { known, .. }
            | Self::DeleteContact { known, .. } => known.as_ref(),
        }
    }
}

impl CommandPolicy for ContactCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::CreateContact { .. } => "CreateContact",
            Self::UpdateContact { .. } => "UpdateContact",
            Self::SetDoNotCall { .. } => "SetDoNotCall",
            Self::ClearDoNotCall { .. } => "ClearDoNotCall",
            Self::DeleteContact { .. } => "DeleteContact",
        }
    }
}

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContactEvent {
    ContactCreated {
        data: ContactData,
        at: DateTime<Utc>,
    },
    /// The whole contact after the change, and the fields that changed.
    ContactUpdated {
        data: ContactData,
        changed: Vec<String>,
        at: DateTime<Utc>,
    },
    ContactMarkedDoNotCall {
        data: ContactData,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    ContactDoNotCallCleared {
        data: ContactData,
        at: DateTime<Utc>,
    },
    ContactDeleted {
        phone_number: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ContactEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ContactCreated { .. } => "ContactCreated",
            Self::ContactUpdated { .. } => "ContactUpdated",
            Self::ContactMarkedDoNotCall { .. } => "ContactMarkedDoNotCall",
            Self::ContactDoNotCallCleared { .. } => "ContactDoNotCallCleared",
            Self::ContactDeleted { .. } => "ContactDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContactError {
    #[error("contact not found")]
    NotFound,
    #[error("contact already exists")]
    AlreadyExists,
    #[error("invalid contact")]
    Invalid(Vec<InvalidValue>),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub data: Option<ContactData>,
    pub deleted: bool,
}

impl Aggregate for Contact {
    const TYPE: &'static str = "Contact";
    type Command = ContactCommand;
    type Event = ContactEvent;
    type Error = ContactError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ContactCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ContactError> {
        if let ContactCommand::CreateContact { data, at } = command {
            if self.data.is_some() {
                return Err(ContactError::AlreadyExists);
            }
            sink.write(ContactEvent::ContactCreated { data, at }, self).await;
            return Ok(());
        }
        if self.deleted {
            return Err(ContactError::NotFound);
        }
        let Some(current) = self.data.clone().or_else(|| command.known().cloned()) else {
            return Err(ContactError::NotFound);
        };
        let event = match command {
            ContactCommand::CreateContact { .. } => return Err(ContactError::AlreadyExists),
            ContactCommand::UpdateContact { patch, at, .. } => {
                let data = current.patched(&patch).map_err(ContactError::Invalid)?;
                let (before, after) = (json_fields(&current), json_fields(&data));
                let changed: Vec<String> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .collect();
                if changed.is_empty() && self.data.is_some() {
                    return Ok(());
                }
                ContactEvent::ContactUpdated { data, changed, at }
            }
            ContactCommand::SetDoNotCall { reason, at, .. } => {
                if current.do_not_call && self.data.is_some() {
                    return Ok(());
                }
                ContactEvent::ContactMarkedDoNotCall {
                    data: ContactData { do_not_call: true, ..current },
                    reason,
                    at,
                }
            }
            ContactCommand::ClearDoNotCall { at, .. } => {
                if !current.do_not_call && self.data.is_some() {
                    return Ok(());
                }
                ContactEvent::ContactDoNotCallCleared {
                    data: ContactData { do_not_call: false, ..current },
                    at,
                }
            }
            ContactCommand::DeleteContact { at, .. } => {
                ContactEvent::ContactDeleted { phone_number: current.phone_number, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ContactEvent) {
        match event {
            ContactEvent::ContactCreated { data, .. }
            | ContactEvent::ContactUpdated { data, .. }
            | ContactEvent::ContactMarkedDoNotCall { data, .. }
            | ContactEvent::ContactDoNotCallCleared { data, .. } => self.data = Some(data),
            ContactEvent::ContactDeleted { .. } => self.deleted = true,
        }
    }
}

fn json_fields(data: &ContactData) -> Map<String, Value> {
    match serde_json::to_value(data) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}
