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
            .replace("{name}", "company_view")
            .replace("{phone_number}", "%2B14155550123");
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
