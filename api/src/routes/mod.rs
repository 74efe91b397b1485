//! One router per feature, merged in one place.

pub mod admin;
pub mod agents;
pub mod auth;
pub mod browser;
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
pub mod ivr;
pub mod providers;
pub mod queued_calls;
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
        .merge(browser::router())
        .merge(providers::router())
        .merge(sessions::router())
        .merge(stats::router())
        .merge(ivr::router())
        .merge(agents::router())
        .merge(teams::router())
        .merge(queues::router())
        .merge(queued_calls::router())
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

/// What the route annotations cannot say once for all: every error is documented as it is sent
/// (`application/problem+json`), and the limits every route enforces through the shared
/// extractors (`limit` 1–500, `min_position` ≥ 0, an `Idempotency-Key` of 1–255 visible ASCII
/// characters) are in the document. Applied to the finished document (after every router's
/// paths are merged); the answer is what `/openapi.json` serves.
pub fn finish_document(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut v = serde_json::to_value(&doc).unwrap_or(Value::Null);
    if let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    for p in params.iter_mut() {
                        let limits = match p["name"].as_str() {
                            Some("limit") => {
                                json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": 500})
                            }
                            Some("min_position") => {
                                json!({"type": "integer", "format": "int64", "minimum": 0})
                            }
                            Some("Idempotency-Key") => {
                                json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"})
                            }
                            _ => continue,
                        };
                        p["schema"] = limits;
                    }
                }
                // What the shared layers answer on any operation of this kind, where the
                // operation's own list leaves it out.
                let secured = op.get("security").is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty()));
                let has_body = op.get("requestBody").is_some();
                let has_params =
                    op.get("parameters").is_some_and(|p| p.as_array().is_some_and(|a| !a.is_empty()));
                let mut shared: Vec<(&str, &str)> = vec![
                    ("408", "The request took longer than the request timeout (problem+json)"),
                    ("503", "The database or a read model is unavailable; see `Retry-After` (problem+json)"),
                ];
                if secured {
                    shared.push(("401", "Not authenticated (problem+json)"));
                    shared.push(("403", "Not allowed, or the company is suspended (problem+json)"));
                }
                if has_params {
                    shared.push(("400", "Invalid query or header (problem+json)"));
                    shared.push(("404", "Not found: another company's or no such id (problem+json)"));
                }
                let waits = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|p| p["name"] == "min_position"));
                if waits {
                    shared.push((
                        "422",
                        "`min_position` is past the end of the log: `unknown_position` (problem+json)",
                    ));
                }
                if has_body {
                    shared.push(("400", "Malformed JSON (problem+json)"));
                    shared.push(("413", "The body is too large (problem+json)"));
                    shared.push(("415", "Not JSON (problem+json)"));
                    shared.push(("422", "Invalid fields (problem+json)"));
                }
                let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                    continue;
                };
                for (status, description) in shared {
                    responses.entry(status).or_insert_with(|| {
                        json!({"description": description,
                            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
                    });
                }
                for response in responses.values_mut() {
                    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
                        continue;
                    };
                    let problem = content.get("application/json").is_some_and(|c| {
                        c["schema"]["$ref"].as_str().is_some_and(|r| r.ends_with("/Problem"))
                    });
                    if problem {
                        if let Some(c) = content.remove("application/json") {
                            content.insert("application/problem+json".into(), c);
                        }
                    }
                }
            }
        }
    }
    // A closed schema (`additionalProperties: false`, from `deny_unknown_fields`) flattened
    // into a response is an `allOf` no document can satisfy (the other part's fields are
    // "additional" to it): there, use an open copy of it. Requests keep the closed one.
    let schemas = v.pointer("/components/schemas").cloned().unwrap_or(Value::Null);
    if let Some(all) = v.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for schema in all.values_mut() {
            let Some(parts) = schema.get_mut("allOf").and_then(Value::as_array_mut) else { continue };
            for part in parts.iter_mut() {
                let Some(name) = part["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/"))
                else {
                    continue;
                };
                let target = &schemas[name];
                if target["additionalProperties"] == json!(false) {
                    let mut open = target.clone();
                    if let Some(o) = open.as_object_mut() {
                        o.remove("additionalProperties");
                    }
                    *part = open;
                }
            }
        }
    }
    v
}
