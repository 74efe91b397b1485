//! The Kraliki Voice server: HTTP API, configuration, telemetry and the `kraliki` CLI.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod export;
pub mod extract;
pub mod i18n;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::Settings;
pub use startup::Application;
