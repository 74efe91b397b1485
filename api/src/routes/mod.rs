//! One router per feature, merged in one place.

pub mod admin;
pub mod auth;
pub mod companies;
pub mod health;
pub mod users;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(companies::router())
        .merge(admin::router())
        .merge(users::router())
}
