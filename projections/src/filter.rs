//! Which events a projection or a process manager reads.
//!
//! The runner asks the log for these only (the checkpoint still moves over the rest): a large
//! event of an aggregate a read model ignores (a routing decision with every candidate) is then
//! neither transferred nor parsed by it.

use crate::event::StoredEvent;

/// Whole aggregates, plus single event types of other aggregates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    aggregates: Vec<&'static str>,
    events: Vec<(&'static str, &'static str)>,
}

impl EventFilter {
    /// Every event of these aggregate types.
    pub fn aggregates(types: &[&'static str]) -> Self {
        Self { aggregates: types.to_vec(), events: Vec::new() }
    }

    /// Also every event of `aggregate`.
    pub fn and_aggregate(mut self, aggregate: &'static str) -> Self {
        self.aggregates.push(aggregate);
        self
    }

    /// Also these event types of `aggregate`.
    pub fn and_events(mut self, aggregate: &'static str, types: &[&'static str]) -> Self {
        self.events.extend(types.iter().map(|t| (aggregate, *t)));
        self
    }

    /// Only these event types of `aggregate`.
    pub fn events(aggregate: &'static str, types: &[&'static str]) -> Self {
        Self::default().and_events(aggregate, types)
    }

    pub fn matches(&self, event: &StoredEvent) -> bool {
        self.aggregates.contains(&event.aggregate_type.as_str())
            || self.events.iter().any(|(a, t)| *a == event.aggregate_type && *t == event.event_type)
    }

    /// Every aggregate type some of whose events it reads.
    pub fn aggregate_types(&self) -> Vec<&'static str> {
        let mut types: Vec<&'static str> =
            self.aggregates.iter().copied().chain(self.events.iter().map(|e| e.0)).collect();
        types.sort_unstable();
        types.dedup();
        types
    }

    /// The SQL condition selecting these events of `events`, with the two arrays of
    /// [`EventFilter::sql_arrays`] bound as parameters number `aggregates_param` and
    /// `events_param`.
    pub(crate) fn sql_condition(aggregates_param: usize, events_param: usize) -> String {
        format!(
            "(aggregate_type = ANY(${aggregates_param}) OR aggregate_type || '/' || event_type = ANY(${events_param}))"
        )
    }

    /// The two arrays the runner's query binds: whole aggregates, and `aggregate/event` pairs.
    pub(crate) fn sql_arrays(&self) -> (Vec<String>, Vec<String>) {
        (
            self.aggregates.iter().map(|a| (*a).to_owned()).collect(),
            self.events.iter().map(|(a, t)| format!("{a}/{t}")).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(aggregate: &str, kind: &str) -> StoredEvent {
        StoredEvent {
            global_position: 1,
            tx: 1,
            aggregate_type: aggregate.into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: kind.into(),
            event_version: "1".into(),
            payload: serde_json::Value::Null,
            metadata: serde_json::Value::Null,
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn whole_aggregates_and_single_events() {
        let filter = EventFilter::aggregates(&["QueuedCall"]).and_events("Agent", &["AgentReserved"]);
        assert!(filter.matches(&event("QueuedCall", "RoutingDecided")));
        assert!(filter.matches(&event("Agent", "AgentReserved")));
        assert!(!filter.matches(&event("Agent", "AgentUpdated")));
        assert!(!filter.matches(&event("Call", "AgentReserved")));
        assert_eq!(
            filter.sql_arrays(),
            (vec!["QueuedCall".to_owned()], vec!["Agent/AgentReserved".to_owned()])
        );
        assert_eq!(filter.aggregate_types(), vec!["Agent", "QueuedCall"]);
    }
}
