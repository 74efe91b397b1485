//! The tenant-wide do-not-call list, one small stream per number (`<tenant>:<E.164>`), so
//! an auditor sees who listed or cleared a number, when and why.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::CommandPolicy;

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, PartialEq)]
pub enum DoNotCallCommand {
    AddNumber { phone_number: String, reason: Option<String>, source: Option<String>, at: DateTime<Utc> },
    RemoveNumber { reason: Option<String>, at: DateTime<Utc> },
}

impl CommandPolicy for DoNotCallCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::AddNumber { .. } => "AddDoNotCallNumber",
            Self::RemoveNumber { .. } => "RemoveDoNotCallNumber",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DoNotCallEvent {
    DoNotCallNumberAdded {
        phone_number: String,
        reason: Option<String>,
        source: Option<String>,
        at: DateTime<Utc>,
    },
    DoNotCallNumberRemoved {
        phone_number: String,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for DoNotCallEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DoNotCallNumberAdded { .. } => "DoNotCallNumberAdded",
            Self::DoNotCallNumberRemoved { .. } => "DoNotCallNumberRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoNotCallError {
    #[error("the number is not on the do-not-call list")]
    NotListed,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoNotCallNumber {
    pub phone_number: Option<String>,
    pub listed: bool,
}

impl DoNotCallNumber {
    pub fn stream_id(tenant: &str, phone_number: &str) -> String {
        format!("{tenant}:{phone_number}")
    }
}

impl Aggregate for DoNotCallNumber {
    const TYPE: &'static str = "DoNotCallNumber";
    type Command = DoNotCallCommand;
    type Event = DoNotCallEvent;
    type Error = DoNotCallError;
    type Services = ();

    async fn handle(
        &mut self,
        command: DoNotCallCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DoNotCallError> {
        let event = match command {
            DoNotCallCommand::AddNumber { phone_number, reason, source, at } => {
                if self.listed {
                    return Ok(());
                }
                DoNotCallEvent::DoNotCallNumberAdded { phone_number, reason, source, at }
            }
            DoNotCallCommand::RemoveNumber { reason, at } => match (&self.phone_number, self.listed) {
                (Some(phone), true) => {
                    DoNotCallEvent::DoNotCallNumberRemoved { phone_number: phone.clone(), reason, at }
                }
                _ => return Err(DoNotCallError::NotListed),
            },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: DoNotCallEvent) {
        match event {
            DoNotCallEvent::DoNotCallNumberAdded { phone_number, .. } => {
                self.phone_number = Some(phone_number);
                self.listed = true;
            }
            DoNotCallEvent::DoNotCallNumberRemoved { .. } => self.listed = false,
        }
    }
}
