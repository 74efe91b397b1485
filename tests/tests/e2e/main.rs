//! End-to-end tests: the real server against real PostgreSQL (a database per test) and real
//! NATS JetStream (a stream and subject prefix per test). One binary, many modules.

// A failed unwrap is a failed test, with its location: what a test should do.
#![allow(clippy::unwrap_used)]

mod agents;
mod auth;
mod bad_input;
mod calls;
mod campaigns;
mod companies;
mod event_store;
mod idempotency;
mod ivr;
mod metrics;
mod nats;
mod openapi;
mod operations;
mod process_managers;
mod projections;
mod roles;
mod routing;
mod telephony;
