//! Bulk contact imports, modelled so that a large file is a few events, not one per row: the
//! import's own stream holds its lifecycle (started → validated → completed | failed), and each
//! batch of up to a few thousand rows is one event in a stream of its own ([`ContactBatch`]),
//! so every aggregate stays bounded however large the file.

mod rows;
#[cfg(test)]
mod tests;

pub use rows::{json_input, ColumnMapping, CsvLayout, ImportFormat, RowProblem, CONTACT_COLUMNS};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contact::ContactData;
use crate::CommandPolicy;

#[derive(Debug, Clone, PartialEq)]
pub enum ContactImportCommand {
    StartImport {
        format: ImportFormat,
        file_name: Option<String>,
        size_bytes: u64,
        contact_list: Option<String>,
        default_region: Option<String>,
        mapping: ColumnMapping,
        at: DateTime<Utc>,
    },
    /// The whole file was read once and its structure is sound; rows are counted.
    MarkValidated {
        total_rows: u64,
        at: DateTime<Utc>,
    },
    CompleteImport {
        totals: ImportTotals,
        at: DateTime<Utc>,
    },
    FailImport {
        code: String,
        message: String,
        row: Option<u64>,
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for ContactImportCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::StartImport { .. } => "StartImport",
            Self::MarkValidated { .. } => "MarkValidated",
            Self::CompleteImport { .. } => "CompleteImport",
            Self::FailImport { .. } => "FailImport",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportTotals {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
    pub duplicates: u64,
    pub do_not_call: u64,
    pub batches: u64,
}

/// Stored forever: never rename a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContactImportEvent {
    ContactImportStarted {
        format: ImportFormat,
        file_name: Option<String>,
        size_bytes: u64,
        contact_list: Option<String>,
        default_region: Option<String>,
        mapping: ColumnMapping,
        at: DateTime<Utc>,
    },
    ContactImportValidated {
        total_rows: u64,
        at: DateTime<Utc>,
    },
    ContactImportCompleted {
        totals: ImportTotals,
        at: DateTime<Utc>,
    },
    /// A file-level problem (encoding, structure, a missing column, an oversized line) or an
    /// interrupted import: none of its contacts count, whatever batches were written.
    ContactImportFailed {
        code: String,
        message: String,
        row: Option<u64>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ContactImportEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ContactImportStarted { .. } => "ContactImportStarted",
            Self::ContactImportValidated { .. } => "ContactImportValidated",
            Self::ContactImportCompleted { .. } => "ContactImportCompleted",
            Self::ContactImportFailed { .. } => "ContactImportFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactImportError {
    #[error("import not found")]
    NotFound,
    #[error("import already started")]
    AlreadyStarted,
    #[error("import already finished")]
    AlreadyFinished,
    #[error("import not validated yet")]
    NotValidated,
    #[error("batch already recorded")]
    BatchAlreadyRecorded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    #[default]
    New,
    Validating,
    Importing,
    Completed,
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Validating => "validating",
            Self::Importing => "importing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactImport {
    pub status: ImportStatus,
}

impl Aggregate for ContactImport {
    const TYPE: &'static str = "ContactImport";
    type Command = ContactImportCommand;
    type Event = ContactImportEvent;
    type Error = ContactImportError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ContactImportCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ContactImportError> {
        use ImportStatus::*;
        let event = match (self.status, command) {
            (
                New,
                ContactImportCommand::StartImport {
                    format,
                    file_name,
                    size_bytes,
                    contact_list,
                    default_region,
                    mapping,
                    at,
                },
            ) => ContactImportEvent::ContactImportStarted {
                format,
                file_name,
                size_bytes,
                contact_list,
                default_region,
                mapping,
                at,
            },
            (_, ContactImportCommand::StartImport { .. }) => return Err(ContactImportError::AlreadyStarted),
            (New, _) => return Err(ContactImportError::NotFound),
            (Completed | Failed, _) => return Err(ContactImportError::AlreadyFinished),
            (Validating, ContactImportCommand::MarkValidated { total_rows, at }) => {
                ContactImportEvent::ContactImportValidated { total_rows, at }
            }
            (Importing, ContactImportCommand::MarkValidated { .. }) => return Ok(()),
            (Importing, ContactImportCommand::CompleteImport { totals, at }) => {
                ContactImportEvent::ContactImportCompleted { totals, at }
            }
            (Validating, ContactImportCommand::CompleteImport { .. }) => {
                return Err(ContactImportError::NotValidated)
            }
            (Validating | Importing, ContactImportCommand::FailImport { code, message, row, at }) => {
                ContactImportEvent::ContactImportFailed { code, message, row, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ContactImportEvent) {
        self.status = match event {
            ContactImportEvent::ContactImportStarted { .. } => ImportStatus::Validating,
            ContactImportEvent::ContactImportValidated { .. } => ImportStatus::Importing,
            ContactImportEvent::ContactImportCompleted { .. } => ImportStatus::Completed,
            ContactImportEvent::ContactImportFailed { .. } => ImportStatus::Failed,
        };
    }
}

/// One imported row: the new contact's id, the file's row number and the checked data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedContact {
    pub id: Uuid,
    pub row: u64,
    pub data: ContactData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContactBatchCommand {
    RecordBatch {
        import_id: Uuid,
        batch: u64,
        contacts: Vec<ImportedContact>,
        rejected: Vec<RowProblem>,
        at: DateTime<Utc>,
    },
}

impl CommandPolicy for ContactBatchCommand {
    fn retry_on_conflict(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "RecordBatch"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContactBatchEvent {
    ContactBatchImported {
        import_id: Uuid,
        batch: u64,
        contacts: Vec<ImportedContact>,
        rejected: Vec<RowProblem>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ContactBatchEvent {
    fn event_type(&self) -> String {
        "ContactBatchImported".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// One batch of an import: written once. Its id is `<import id>:<batch number>`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactBatch {
    pub recorded: bool,
}

impl ContactBatch {
    pub fn stream_id(import_id: Uuid, batch: u64) -> String {
        format!("{import_id}:{batch}")
    }
}

impl Aggregate for ContactBatch {
    const TYPE: &'static str = "ContactBatch";
    type Command = ContactBatchCommand;
    type Event = ContactBatchEvent;
    type Error = ContactImportError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ContactBatchCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ContactImportError> {
        if self.recorded {
            return Err(ContactImportError::BatchAlreadyRecorded);
        }
        let ContactBatchCommand::RecordBatch { import_id, batch, contacts, rejected, at } = command;
        sink.write(
            ContactBatchEvent::ContactBatchImported { import_id, batch, contacts, rejected, at },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, _: ContactBatchEvent) {
        self.recorded = true;
    }
}
