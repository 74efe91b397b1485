//! Logs (text or JSON), the Prometheus recorder (every metric from
//! `kraliki_projections::metrics_catalog`) and the HTTP request metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use kraliki_projections::metrics_catalog as catalog;
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sqlx::PgPool;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, Settings};

/// Installs the log subscriber once per process (later calls are no-ops).
pub fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{},sqlx=warn,async_nats=warn,tower_http=info", settings.log_level))
    });
    let result = match settings.log_format {
        LogFormat::Json => fmt().json().with_env_filter(filter).with_current_span(true).try_init(),
        LogFormat::Text => fmt().with_env_filter(filter).try_init(),
    };
    // Already installed (tests run several servers in one process): keep the first.
    drop(result);
}

/// The process-wide metrics recorder: installed once, every metric of the catalog described
/// and its alerting series started at zero.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            catalog::describe_all();
            catalog::start_at_zero();
            handle
        })
        .clone()
}

/// A Prometheus recorder with every histogram of the catalog on its own buckets (tests build
/// private ones to render metrics without touching the process-wide recorder).
pub fn recorder() -> PrometheusRecorder {
    let mut builder = PrometheusBuilder::new();
    for m in catalog::ALL.iter().filter(|m| m.kind == catalog::Kind::Histogram) {
        builder = match builder.set_buckets_for_metric(Matcher::Full(m.name.into()), m.buckets) {
            Ok(b) => b,
            // Only an empty bucket list is refused, and the catalog's tests rule that out.
            Err(_) => PrometheusBuilder::new(),
        };
    }
    // A histogram missing from the catalog still renders as one (and promtool then reports its
    // missing HELP) rather than as a summary.
    builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), catalog::DURATION_BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new())
        .build_recorder()
}

/// Gauges read from the database, refreshed at scrape time: lag per projection and process
/// manager, the transaction barrier's age, and the campaigns that dial by themselves.
pub async fn refresh_gauges(pool: &PgPool, wake: &kraliki_projections::Wake) -> Result<(), sqlx::Error> {
    kraliki_projections::status::read_side(pool, Some(wake)).await?;
    let dialing = kraliki_voice::dialer::campaigns_dialing(pool).await?;
    metrics::gauge!(catalog::DIALER_CAMPAIGNS_ACTIVE.name).set(dialing as f64);
    Ok(())
}

/// Counts and times every request by its matched route template, method and status class.
/// Added with `Router::layer`, it runs once routing has matched, so `MatchedPath` is known;
/// a request no route matched is `unmatched` (its raw path never becomes a label).
pub async fn track_http(request: Request, next: Next) -> Response {
    let route: SharedString = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned().into(),
        None => SharedString::const_str("unmatched"),
    };
    let method = method_label(request.method());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    let tenant = TenantSlot::default();
    let mut request = request;
    request.extensions_mut().insert(tenant.clone());
    let started = Instant::now();
    let in_flight = InFlight::start(method, route.clone());
    let response = next.run(request).await;
    drop(in_flight);
    // One line per request: never its query, headers or body (tokens, personal data).
    tracing::info!(
        target: "kraliki::http",
        method,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        tenant = tenant.get().map(|t| t.to_string()).unwrap_or_default(),
        "request"
    );
    let labels = [
        ("method", SharedString::const_str(method)),
        ("route", route),
        ("status_class", SharedString::const_str(status_class(response.status()))),
    ];
    metrics::counter!(catalog::HTTP_REQUESTS.name, &labels).increment(1);
    metrics::histogram!(catalog::HTTP_REQUEST_DURATION.name, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The company a request acted for, once its caller is authenticated (set by the `AuthUser`
/// extractor, read by the request log line).
#[derive(Clone, Default)]
pub struct TenantSlot(std::sync::Arc<std::sync::OnceLock<uuid::Uuid>>);

impl TenantSlot {
    pub fn set(&self, tenant: uuid::Uuid) {
        let _ = self.0.set(tenant);
    }

    pub fn get(&self) -> Option<uuid::Uuid> {
        self.0.get().copied()
    }
}

/// A request in `kraliki_http_requests_in_flight`, also when its future is dropped (the client
/// went away).
struct InFlight(metrics::Gauge);

impl InFlight {
    fn start(method: &'static str, route: SharedString) -> Self {
        let gauge = metrics::gauge!(catalog::HTTP_IN_FLIGHT.name, "method" => method, "route" => route);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Standard methods by name; anything else is `other` (a client cannot mint label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One JSON line per request at info: method, matched route, status, latency, request id
    /// and the tenant the caller acted for — never the raw path, its query or a token.
    #[tokio::test]
    async fn every_request_logs_one_line_without_what_it_carried() {
        use tower::ServiceExt;
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let tenant = uuid::Uuid::now_v7();
        let app = axum::Router::new()
            .route(
                "/api/v1/things/{id}",
                axum::routing::get(move |slot: axum::Extension<TenantSlot>| async move {
                    slot.set(tenant);
                    "ok"
                }),
            )
            .layer(axum::middleware::from_fn(track_http));
        let request = Request::builder()
            .uri("/api/v1/things/secret-id-42?access_token=eyJsecret")
            .header("x-request-id", "req-7")
            .header("authorization", "Bearer eyJsecret")
            .body(axum::body::Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        let logged: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l: &serde_json::Value| l["target"] == "kraliki::http")
            .collect();
        assert_eq!(logged.len(), 1, "{text}");
        let f = &logged[0]["fields"];
        assert_eq!((f["method"].as_str(), f["route"].as_str()), (Some("GET"), Some("/api/v1/things/{id}")));
        assert_eq!((f["status"].as_u64(), f["request_id"].as_str()), (Some(200), Some("req-7")));
        assert_eq!(f["tenant"], tenant.to_string());
        assert!(f["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
        assert_eq!(logged[0]["level"], "INFO");
        assert!(!text.contains("secret"), "nothing the request carried is logged: {text}");
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").expect("a method")), "other");
        assert_eq!(status_class(StatusCode::SWITCHING_PROTOCOLS), "1xx");
        assert_eq!(status_class(StatusCode::NO_CONTENT), "2xx");
        assert_eq!(status_class(StatusCode::PERMANENT_REDIRECT), "3xx");
        assert_eq!(status_class(StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }

    /// Every histogram of the catalog renders with its own buckets, and every metric with its
    /// HELP line (a private recorder: the process-wide one is left alone).
    #[test]
    fn the_recorder_describes_and_buckets_every_catalog_metric() {
        let recorder = recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            catalog::describe_all();
            for m in catalog::ALL {
                let labels: Vec<(&str, &str)> = m.labels.iter().map(|l| (*l, "x")).collect();
                match m.kind {
                    catalog::Kind::Counter => metrics::counter!(m.name, &labels).increment(1),
                    catalog::Kind::Gauge => metrics::gauge!(m.name, &labels).set(1.0),
                    catalog::Kind::Histogram => metrics::histogram!(m.name, &labels).record(0.0),
                }
            }
        });
        let text = handle.render();
        for m in catalog::ALL {
            assert!(text.contains(&format!("# HELP {} {}\n", m.name, m.help)), "no HELP for {}", m.name);
            assert!(
                text.contains(&format!("# TYPE {} {}\n", m.name, m.kind.as_str())),
                "{} is not a {:?}",
                m.name,
                m.kind
            );
            if let Some(first) = m.buckets.first() {
                assert!(text.contains(&format!("{}_bucket{{", m.name)), "{}", m.name);
                assert!(text.contains(&format!("le=\"{first}\"")), "{}: bucket {first} missing", m.name);
            }
        }
    }
}
