//! IVR flows (DOMAIN.md "IVR: 9 node types"): the flow model in the seed's JSON ([`flow`]),
//! the validator ([`validate()`]), the condition language ([`condition`]), the pure interpreter
//! ([`step`]) and the simulator behind "test this flow" ([`simulate()`]), and the [`IvrFlow`]
//! aggregate: a draft edited freely and immutable published versions 1, 2, … of which one is
//! live (the latest, or an earlier one republished).

mod commands;
pub mod condition;
mod error;
mod events;
pub mod flow;
pub mod interpreter;
pub mod simulate;
#[cfg(test)]
mod tests;
pub mod validate;

pub use commands::IvrFlowCommand;
pub use error::IvrFlowError;
pub use events::IvrFlowEvent;
pub use flow::{ExitKind, Flow, HttpMethod, InputType, KeyedList, Message, Node, NodeType, TransferType};
pub use interpreter::{
    step, CallStart, Effect, EndReason, Input, IvrStep, Prompt, Session, SessionStatus, StepOutcome,
    TransferOutcome, TransferRequest, Waiting, MAX_VISITS,
};
pub use simulate::{simulate, ScriptedInput, Simulation, Trace, TraceStep};
pub use validate::{
    check, validate, validate_with, FlowIssue, IssueCode, IssueSeverity, ValidationContext, WebhookPolicy,
    WebhookRefusal,
};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

/// The IVR flow aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IvrFlow {
    /// Created.
    pub created: bool,
    /// Archived.
    pub archived: bool,
    /// The draft being edited.
    pub draft: Flow,
    /// The highest version published (0: never).
    pub latest_version: u32,
    /// The version calls run (the latest, or one republished).
    pub live_version: Option<u32>,
    /// The latest version's flow, so that publishing an unchanged draft makes no version.
    pub latest_flow: Option<Flow>,
}

impl IvrFlow {
    fn require_open(&self) -> Result<(), IvrFlowError> {
        if !self.created {
            return Err(IvrFlowError::NotFound);
        }
        if self.archived {
            return Err(IvrFlowError::Archived);
        }
        Ok(())
    }

    fn draft_event(
        &self,
        flow: Flow,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<IvrFlowEvent>, IvrFlowError> {
        let flow = flow.checked().map_err(IvrFlowError::InvalidFlow)?;
        let changed = self.draft.changed_fields(&flow);
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![IvrFlowEvent::IvrFlowDraftUpdated { flow, changed, at }])
    }

    /// Decides a command: the events it leads to (none when it changes nothing), or why not.
    pub fn decide(&self, command: IvrFlowCommand) -> Result<Vec<IvrFlowEvent>, IvrFlowError> {
        match command {
            IvrFlowCommand::CreateIvrFlow { flow, at } => {
                if self.created {
                    return Err(IvrFlowError::AlreadyExists);
                }
                let flow = flow.checked().map_err(IvrFlowError::InvalidFlow)?;
                Ok(vec![IvrFlowEvent::IvrFlowCreated { flow, at }])
            }
            IvrFlowCommand::ReplaceIvrFlowDraft { flow, at } => {
                self.require_open()?;
                self.draft_event(flow, at)
            }
            IvrFlowCommand::UpdateIvrFlowDraft { patch, at } => {
                self.require_open()?;
                let flow = self.draft.patched(&patch).map_err(IvrFlowError::InvalidFlow)?;
                self.draft_event(flow, at)
            }
            IvrFlowCommand::PublishIvrFlow { context, at } => {
                self.require_open()?;
                validate_with(&self.draft, &context).map_err(IvrFlowError::NotPublishable)?;
                let unchanged = self.latest_flow.as_ref() == Some(&self.draft);
                if unchanged && self.live_version == Some(self.latest_version) {
                    return Ok(Vec::new());
                }
                let version = self.latest_version + 1;
                Ok(vec![IvrFlowEvent::IvrFlowPublished { version, flow: self.draft.clone(), at }])
            }
            IvrFlowCommand::RepublishIvrFlowVersion { version, at } => {
                self.require_open()?;
                if version == 0 || version > self.latest_version {
                    return Err(IvrFlowError::UnknownVersion(version));
                }
                if self.live_version == Some(version) {
                    return Ok(Vec::new());
                }
                Ok(vec![IvrFlowEvent::IvrFlowVersionRepublished { version, previous: self.live_version, at }])
            }
            IvrFlowCommand::ArchiveIvrFlow { at } => {
                self.require_open()?;
                Ok(vec![IvrFlowEvent::IvrFlowArchived { at }])
            }
        }
    }
}

impl Aggregate for IvrFlow {
    const TYPE: &'static str = "IvrFlow";
    type Command = IvrFlowCommand;
    type Event = IvrFlowEvent;
    type Error = IvrFlowError;
    type Services = ();

    async fn handle(
        &mut self,
        command: IvrFlowCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), IvrFlowError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: IvrFlowEvent) {
        match event {
            IvrFlowEvent::IvrFlowCreated { flow, .. } => {
                self.created = true;
                self.draft = flow;
            }
            IvrFlowEvent::IvrFlowDraftUpdated { flow, .. } => self.draft = flow,
            IvrFlowEvent::IvrFlowPublished { version, flow, .. } => {
                self.latest_version = version;
                self.live_version = Some(version);
                self.latest_flow = Some(flow);
            }
            IvrFlowEvent::IvrFlowVersionRepublished { version, .. } => self.live_version = Some(version),
            IvrFlowEvent::IvrFlowArchived { .. } => self.archived = true,
        }
    }
}
