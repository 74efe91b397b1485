//! The API description: valid OpenAPI 3.1 (checked by a real validator), exactly the routes the
//! router serves, and interactive docs that render in a browser with no network.

use std::process::Command;

use kraliki_api::startup::NO_SUCH_ROUTE;
use kraliki_tests::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn tool(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with scripts/test, which installs it"))
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_exactly_the_served_routes() {
    let app = spawn_app().await;
    let spec: Value = app.anon.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");

    // A real validator: openapi-spec-validator from PyPI.
    let file = std::env::temp_dir().join(format!("kraliki-openapi-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let out = Command::new(tool("KRALIKI_TEST_PYTHON"))
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "invalid OpenAPI: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every documented operation is served: its method on its path reaches a handler (not the
    // fallback, not 405).
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{user_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{account_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{key_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{call_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{offer_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{name}", "company_view")
            .replace("{phone_number}", "%2B14155550123")
            .replace("{version}", "1");
        assert!(!concrete.contains('{'), "unfilled parameter in {path}");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let mut req = app.client.request(method.clone(), app.url(&concrete));
            if method == Method::POST || method == Method::PUT {
                req = req.header("content-type", "application/json").body("{}");
            }
            let r = req.send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["detail"], NO_SUCH_ROUTE, "{method} {path} is documented but not served");
            operations += 1;
        }
    }
    assert!(operations >= 29, "{operations}");
    // ... and nothing undocumented: the route modules register routes only through
    // `utoipa_axum::routes!`, which documents them.
    let routes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src/routes");
    for entry in std::fs::read_dir(routes).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap().replace("OpenApiRouter::new()", "");
        assert!(
            !source.contains(".route(") && !source.contains("Router::new()") && !source.contains(".nest("),
            "{} adds undocumented routes",
            path.display()
        );
    }
    // The fallback really is what an unknown route gets.
    let r: Value = app.client.get(app.url("/api/v1/not-a-route")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["detail"], NO_SUCH_ROUTE);
    app.cleanup().await;
}

#[tokio::test]
async fn the_docs_render_in_headless_chromium_with_no_network() {
    let app = spawn_app().await;
    let url = app.url("/docs/");
    let chromium = tool("KRALIKI_TEST_CHROMIUM");
    let profile = std::env::temp_dir().join(format!("kraliki-chromium-{}", uuid::Uuid::now_v7()));
    let dom = tokio::task::spawn_blocking(move || {
        let out = Command::new("timeout")
            .arg("90")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Everything but this machine is unreachable: the page must need nothing else.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=20000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .output()
            .expect("chromium runs");
        let _ = std::fs::remove_dir_all(&profile);
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(dom.contains("swagger-ui"), "no Swagger UI in the page");
    assert!(dom.contains("opblock"), "the operations list did not render:\n{}", &dom[..dom.len().min(2000)]);
    for op in ["/api/v1/companies", "/api/v1/auth/login", "/ready"] {
        assert!(dom.contains(op), "{op} is not listed in the rendered docs");
    }
    app.cleanup().await;
}

/// Every type the document describes has a name of its own: utoipa keys schemas by the type's
/// name, so two `CreateBody`s in two modules would silently become one (the second documented
/// with the first's fields). Read from the sources of every crate that derives `ToSchema`.
#[test]
fn no_two_documented_types_share_a_schema_name() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut stack: Vec<std::path::PathBuf> = ["api", "domain", "projections", "voice", "commands"]
        .iter()
        .map(|c| root.join(c).join("src"))
        .collect();
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !(line.contains("derive(") && line.contains("ToSchema")) {
                    continue;
                }
                // The item the derive applies to, and a `#[schema(as = …)]` rename on the way.
                let mut renamed = None;
                for next in &lines[i + 1..] {
                    let t = next.trim();
                    if let Some(rest) = t.strip_prefix("#[schema(as = ") {
                        renamed = rest.split([')', ',']).next().map(|s| s.trim().to_owned());
                    }
                    let item = t.strip_prefix("pub ").unwrap_or(t);
                    let item = item.strip_prefix("pub(crate) ").unwrap_or(item);
                    if let Some(rest) = item.strip_prefix("struct ").or_else(|| item.strip_prefix("enum ")) {
                        let name: String =
                            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        let name = renamed.take().unwrap_or(name);
                        seen.entry(name)
                            .or_default()
                            .push(path.strip_prefix(&root).unwrap().display().to_string());
                        break;
                    }
                }
            }
        }
    }
    assert!(files > 50 && seen.len() > 50, "the sources were read ({files} files, {} types)", seen.len());
    let shared: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(shared.is_empty(), "schema names used by more than one type: {shared:?}");
}

/// The document says what is sent and what is enforced: errors as `application/problem+json`,
/// the shared limits on `limit`, `min_position` and `Idempotency-Key`, and no response schema
/// that no response could satisfy (a closed schema inside an `allOf`).
#[tokio::test]
async fn the_document_describes_errors_limits_and_responses_as_served() {
    let app = spawn_app().await;
    let spec: Value = app.anon.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let (mut problems, mut limits) = (0, 0);
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                let content = response["content"].as_object();
                let as_json = content.and_then(|c| c.get("application/json"));
                assert!(
                    as_json.is_none_or(|c| !c["schema"]["$ref"]
                        .as_str()
                        .unwrap_or_default()
                        .ends_with("/Problem")),
                    "{method} {path} {status}: a problem documented as application/json"
                );
                problems += usize::from(content.is_some_and(|c| c.contains_key("application/problem+json")));
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let s = &p["schema"];
                match p["name"].as_str().unwrap() {
                    "limit" => assert_eq!(
                        (&s["minimum"], &s["maximum"]),
                        (&serde_json::json!(1), &serde_json::json!(500)),
                        "{method} {path}"
                    ),
                    "min_position" => assert_eq!(s["minimum"], 0, "{method} {path}"),
                    "Idempotency-Key" => assert_eq!(s["maxLength"], 255, "{method} {path}"),
                    _ => continue,
                }
                limits += 1;
            }
        }
    }
    assert!(problems > 100 && limits > 20, "{problems} problem responses, {limits} limited parameters");
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        for part in schema["allOf"].as_array().into_iter().flatten() {
            let closed = match part["$ref"].as_str() {
                Some(r) => {
                    schemas[r.trim_start_matches("#/components/schemas/")]["additionalProperties"] == false
                }
                None => part["additionalProperties"] == false,
            };
            assert!(!closed, "{name}: a closed schema inside allOf can never be satisfied");
        }
    }
    assert!(schemas["CampaignResponse"]["allOf"].is_array(), "the campaign is still settings + state");
    app.cleanup().await;
}

/// Schemathesis (PyPI, pinned in the test venv) drives every operation with `--checks all` and
/// a bounded number of examples: whatever it reports about inputs the document does not
/// constrain, no response contradicts the document — no server error, no body outside its
/// schema, no undocumented content type.
#[tokio::test]
async fn schemathesis_finds_no_response_the_document_does_not_describe() {
    use kraliki_domain::values::Role;
    let app = spawn_app().await;
    let (_, token) = app.token_for(&[Role::Admin], uuid::Uuid::now_v7()).await;
    let python = std::path::PathBuf::from(tool("KRALIKI_TEST_PYTHON"));
    let cli = python.with_file_name("schemathesis");
    // Off the test's runtime thread: the server under test answers on it meanwhile.
    let url = app.url("/openapi.json");
    // A directory of its own: schemathesis keeps a cache of failures there and would replay them.
    let work = std::env::temp_dir().join(format!("kraliki-schemathesis-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&work).unwrap();
    let dir = work.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .current_dir(&dir)
            .arg("600")
            .arg(&cli)
            .args(["run", &url, "--checks", "all", "--max-examples", "3", "--seed", "7"])
            .args(["--workers", "2", "--exclude-path-regex", "^/(ws/|api/telephony/(twilio|telnyx)/)"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let _ = std::fs::remove_dir_all(&work);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let tested: usize = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no summary from schemathesis:\n{text}"));
    assert!(tested >= 100, "schemathesis tested {tested} operations:\n{text}");
    let summary = text.split("Failures:").nth(1).unwrap_or_default();
    for forbidden in [
        "Server error",
        "Response violates schema",
        "Undocumented Content-Type",
        "Missing Content-Type",
        "Malformed media type",
        "Missing required header",
        "Response header does not conform to the schema",
    ] {
        assert!(!summary.contains(forbidden), "schemathesis: {forbidden}\n{text}");
    }
    app.cleanup().await;
}
