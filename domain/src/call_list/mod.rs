//! A call list: which of the tenant's contacts a campaign dials, and in what order. A saved
//! filter over contacts (not a copy of them), so contacts imported later join it.

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::values::{clean_text, InvalidValue};
use crate::CommandPolicy;

/// Which contacts belong. Every condition given must hold; empty conditions match everyone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ContactFilter {
    /// At least one of these tags.
    pub tags_any: Vec<String>,
    /// All of these tags.
    pub tags_all: Vec<String>,
    /// None of these tags.
    pub exclude_tags: Vec<String>,
    /// In at least one of these contact lists.
    pub lists: Vec<String>,
    /// Custom fields equal to these values.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Map<String, Value>,
    /// Attempts by this campaign fewer than this.
    pub max_attempts_below: Option<u32>,
    /// The last outcome was one of these (`never` = not attempted yet).
    pub last_outcomes: Vec<String>,
    pub languages: Vec<String>,
    pub timezones: Vec<String>,
    /// Only contacts whose local time is inside the campaign's calling window now.
    pub callable_now: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

/// One key of the dialing order: `created_at`, `attempts`, `last_attempt_at`, `last_name`,
/// `first_name`, or `custom.<field>` (a custom field, compared as text or number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    pub field: String,
    #[serde(default)]
    pub direction: Direction,
}

pub const SORT_FIELDS: &[&str] = &["created_at", "attempts", "last_attempt_at", "last_name", "first_name"];

pub const OUTCOMES: &[&str] =
    &["never", "connected", "no_answer", "busy", "failed", "voicemail", "abandoned"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallListSpec {
    pub name: String,
    pub filter: ContactFilter,
    pub order: Vec<SortKey>,
}

impl CallListSpec {
    pub fn validated(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match clean_text("name", &self.name, 200) {
            Ok(n) => self.name = n,
            Err(e) => problems.push(e),
        }
        for list in [
            &mut self.filter.tags_any,
            &mut self.filter.tags_all,
            &mut self.filter.exclude_tags,
            &mut self.filter.lists,
        ] {
            for t in list.iter_mut() {
                *t = t.trim().to_lowercase();
            }
            list.retain(|t| !t.is_empty());
        }
        for o in &self.filter.last_outcomes {
            if !OUTCOMES.contains(&o.as_str()) {
                problems.push(InvalidValue::new(
                    "filter.last_outcomes",
                    "invalid_outcome",
                    format!("'{o}' is not one of {}", OUTCOMES.join(", ")),
                ));
            }
        }
        for tz in &self.filter.timezones {
            if let Err(e) = crate::values::time_zone("filter.timezones", tz) {
                problems.push(e);
            }
        }
        if self.order.len() > 5 {
            problems.push(InvalidValue::new("order", "too_many", "at most 5 keys"));
        }
        for key in &self.order {
            let custom = key.field.strip_prefix("custom.");
            let ok = SORT_FIELDS.contains(&key.field.as_str())
                || custom.is_some_and(|c| !c.is_empty() && c.len() <= 64 && !c.contains(['\'', '"', '\\']));
            if !ok {
                problems.push(InvalidValue::new(
                    "order",
                    "invalid_sort_field",
                    format!("'{}' is not one of {} or custom.<field>", key.field, SORT_FIELDS.join(", ")),
                ));
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallListCommand {
    CreateCallList { campaign_id: Uuid, spec: CallListSpec, at: DateTime<Utc> },
    UpdateCallList { spec: CallListSpec, at: DateTime<Utc> },
    DeleteCallList { at: DateTime<Utc> },
}

impl CommandPolicy for CallListCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::CreateCallList { .. } => "CreateCallList",
            Self::UpdateCallList { .. } => "UpdateCallList",
            Self::DeleteCallList { .. } => "DeleteCallList",
        }
    }
}

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CallListEvent {
    CallListCreated { campaign_id: Uuid, spec: CallListSpec, at: DateTime<Utc> },
    CallListUpdated { spec: CallListSpec, at: DateTime<Utc> },
    CallListDeleted { at: DateTime<Utc> },
}

impl DomainEvent for CallListEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CallListCreated { .. } => "CallListCreated",
            Self::CallListUpdated { .. } => "CallListUpdated",
            Self::CallListDeleted { .. } => "CallListDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallListError {
    #[error("call list not found")]
    NotFound,
    #[error("call list already exists")]
    AlreadyExists,
    #[error("invalid call list")]
    Invalid(Vec<InvalidValue>),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallList {
    pub campaign_id: Option<Uuid>,
    pub spec: Option<CallListSpec>,
    pub deleted: bool,
}

impl Aggregate for CallList {
    const TYPE: &'static str = "CallList";
    type Command = CallListCommand;
    type Event = CallListEvent;
    type Error = CallListError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CallListCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), CallListError> {
        let event = match command {
            CallListCommand::CreateCallList { campaign_id, spec, at } => {
                if self.spec.is_some() {
                    return Err(CallListError::AlreadyExists);
                }
                CallListEvent::CallListCreated {
                    campaign_id,
                    spec: spec.validated().map_err(CallListError::Invalid)?,
                    at,
                }
            }
            CallListCommand::UpdateCallList { spec, at } => {
                if self.spec.is_none() || self.deleted {
                    return Err(CallListError::NotFound);
                }
                let spec = spec.validated().map_err(CallListError::Invalid)?;
                if Some(&spec) == self.spec.as_ref() {
                    return Ok(());
                }
                CallListEvent::CallListUpdated { spec, at }
            }
            CallListCommand::DeleteCallList { at } => {
                if self.spec.is_none() || self.deleted {
                    return Err(CallListError::NotFound);
                }
                CallListEvent::CallListDeleted { at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CallListEvent) {
        match event {
            CallListEvent::CallListCreated { campaign_id, spec, .. } => {
                self.campaign_id = Some(campaign_id);
                self.spec = Some(spec);
            }
            CallListEvent::CallListUpdated { spec, .. } => self.spec = Some(spec),
            CallListEvent::CallListDeleted { .. } => self.deleted = true,
        }
    }
}
