use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::flow::Flow;

/// Stored forever: never rename a variant. The tenant is in the event metadata (`tenant_id`),
/// as for every aggregate; a flow's campaign and team are in the flow.
// The flow is the payload; boxing it would only change the in-memory shape.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IvrFlowEvent {
    /// Created with this draft.
    IvrFlowCreated { flow: Flow, at: DateTime<Utc> },
    /// The whole draft after the change and the top-level fields that changed.
    IvrFlowDraftUpdated { flow: Flow, changed: Vec<String>, at: DateTime<Utc> },
    /// The draft published as `version` (1, 2, …), now the live version; immutable.
    IvrFlowPublished { version: u32, flow: Flow, at: DateTime<Utc> },
    /// An earlier version is live again (`previous`: the one it replaces).
    IvrFlowVersionRepublished { version: u32, previous: Option<u32>, at: DateTime<Utc> },
    /// Archived.
    IvrFlowArchived { at: DateTime<Utc> },
}

impl DomainEvent for IvrFlowEvent {
    fn event_type(&self) -> String {
        match self {
            Self::IvrFlowCreated { .. } => "IvrFlowCreated",
            Self::IvrFlowDraftUpdated { .. } => "IvrFlowDraftUpdated",
            Self::IvrFlowPublished { .. } => "IvrFlowPublished",
            Self::IvrFlowVersionRepublished { .. } => "IvrFlowVersionRepublished",
            Self::IvrFlowArchived { .. } => "IvrFlowArchived",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
