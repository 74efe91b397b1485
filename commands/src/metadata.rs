//! Who and why: the metadata every event carries.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// The context a command is issued in. Cheap to clone; built at the edge (HTTP, webhook,
/// process manager) and copied into the metadata of every event the command appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub tenant_id: String,
    /// User id, service-account id, or `system:<component>`.
    pub actor: String,
    /// Shared by everything one request or workflow causes.
    pub correlation_id: String,
    /// The event or request that caused this command.
    pub causation_id: Option<String>,
    /// A repeated key returns the first outcome and appends nothing.
    pub idempotency_key: Option<String>,
    /// Whose key it is (the caller's tenant, or `platform`): keys of different callers never meet.
    pub idempotency_scope: String,
    /// A digest of the request; the same key with another request is refused.
    pub request_fingerprint: Option<String>,
}

impl CommandContext {
    pub fn new(tenant_id: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            actor: actor.into(),
            correlation_id: Uuid::now_v7().to_string(),
            causation_id: None,
            idempotency_key: None,
            idempotency_scope: String::new(),
            request_fingerprint: None,
        }
    }

    pub fn with_correlation(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    pub fn with_causation(mut self, causation_id: impl Into<String>) -> Self {
        self.causation_id = Some(causation_id.into());
        self
    }

    pub fn with_idempotency(
        mut self,
        scope: impl Into<String>,
        key: impl Into<String>,
        fingerprint: Option<String>,
    ) -> Self {
        self.idempotency_scope = scope.into();
        self.idempotency_key = Some(key.into());
        self.request_fingerprint = fingerprint;
        self
    }

    /// The metadata map for one event (each event gets its own `event_id`).
    pub fn event_metadata(&self, occurred_at: DateTime<Utc>) -> HashMap<String, String> {
        let mut m = HashMap::with_capacity(8);
        m.insert("event_id".into(), Uuid::now_v7().to_string());
        m.insert("tenant_id".into(), self.tenant_id.clone());
        m.insert("actor".into(), self.actor.clone());
        m.insert("correlation_id".into(), self.correlation_id.clone());
        m.insert(
            "causation_id".into(),
            self.causation_id.clone().unwrap_or_else(|| self.correlation_id.clone()),
        );
        m.insert("occurred_at".into(), occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true));
        if let Some(key) = &self.idempotency_key {
            m.insert("idempotency_key".into(), key.clone());
            m.insert("idempotency_scope".into(), self.idempotency_scope.clone());
        }
        if let Some(fp) = &self.request_fingerprint {
            m.insert("request_fingerprint".into(), fp.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_gets_its_own_id_and_the_shared_context() {
        let ctx = CommandContext::new("t1", "user:1").with_idempotency("t1", "k", Some("fp".into()));
        let now = Utc::now();
        let (a, b) = (ctx.event_metadata(now), ctx.event_metadata(now));
        assert_ne!(a["event_id"], b["event_id"]);
        for key in ["tenant_id", "actor", "correlation_id", "causation_id", "occurred_at", "idempotency_key"]
        {
            assert_eq!(a.get(key), b.get(key), "{key}");
        }
        assert_eq!(a["causation_id"], ctx.correlation_id);
    }
}
