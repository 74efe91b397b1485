//! One router per feature, merged in one place.

pub mod admin;
pub mod agents;
pub mod auth;
pub mod call_lists;
pub mod calls;
pub mod campaign_templates;
pub mod campaigns;
pub mod common;
pub mod companies;
pub mod contacts;
pub mod dial;
pub mod do_not_call;
pub mod health;
pub mod imports;
pub mod providers;
pub mod queues;
pub mod routing_rules;
pub mod service_accounts;
pub mod sessions;
pub mod stats;
pub mod teams;
pub mod telephony;
pub mod users;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Kraliki Voice API", description = "Event-sourced AI call-center backend. Errors are RFC 9457 problem+json with a stable `code`."),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "companies"), (name = "users"), (name = "service-accounts"), (name = "campaigns"), (name = "call-lists"), (name = "campaign-templates"), (name = "contacts"), (name = "do-not-call"), (name = "calls"), (name = "telephony"), (name = "providers"), (name = "sessions"), (name = "analytics"), (name = "operations"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// Every route, each documented: routes exist only through `routes!`, so the OpenAPI document
/// and the router cannot drift apart.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router())
        .merge(companies::router())
        .merge(admin::router())
        .merge(users::router())
        .merge(service_accounts::router())
        .merge(campaigns::router())
        .merge(call_lists::router())
        .merge(campaign_templates::router())
        .merge(contacts::router())
        .merge(imports::router())
        .merge(do_not_call::router())
        .merge(calls::router())
        .merge(telephony::router())
        .merge(dial::router())
        .merge(providers::router())
        .merge(sessions::router())
        .merge(stats::router())
        .merge(agents::router())
        .merge(teams::router())
        .merge(queues::router())
        .merge(routing_rules::router())
}

/// Routes that take large bodies: their own size limit and no request timeout.
pub fn uploads() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(imports::uploads())
}

/// Routes whose JSON bodies may exceed the general limit (held in memory: a limit of their own).
pub fn large_json() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(imports::bulk_router())
}
