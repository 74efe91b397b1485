//! Building and running the application: pool, migrations, wake-ups, projections, HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::Router;
use kraliki_commands::{Dispatcher, Managed, ManagerEnv, ProcessManager, TimerRunner};
use kraliki_projections::company::CompanyProjection;
use kraliki_projections::publisher::{EventPublisher, NatsSettings, Sink};
use kraliki_projections::service_account::ServiceAccountProjection;
use kraliki_projections::user::UserProjection;
use kraliki_projections::{Projection, RunnerSettings, Supervisor, Wake};
use kraliki_voice::calls::CallService;
use kraliki_voice::dialer::Dialer;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
use crate::state::AppState;

pub struct Application {
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Connects the event sink: JetStream when `NATS_URL` is set, in-process otherwise.
pub async fn event_sink(
    settings: &Settings,
) -> anyhow::Result<(Sink, Option<broadcast::Sender<Arc<kraliki_projections::StoredEvent>>>)> {
    match &settings.nats_url {
        Some(url) => {
            // Start even while NATS is down: the client connects (and reconnects) in the
            // background, and the publisher catches up from its checkpoint once it can.
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(url)
                .await
                .with_context(|| format!("NATS_URL {url} is not usable"))?;
            let nats = NatsSettings {
                subject_prefix: settings.nats.subject_prefix.clone(),
                stream: settings.nats.stream.clone(),
                duplicate_window: Duration::from_secs(settings.nats.duplicate_window_secs.max(1)),
            };
            Ok((Sink::nats(client, nats), None))
        }
        None => {
            let (tx, _) = broadcast::channel(4096);
            Ok((Sink::Local(tx.clone()), Some(tx)))
        }
    }
}

/// The process managers this server runs (the dialer only when `dialer.enabled`).
pub fn process_managers(
    settings: &Settings,
    dialer: &Arc<Dialer>,
    calls: &CallService,
) -> Vec<Arc<dyn ProcessManager>> {
    let mut managers: Vec<Arc<dyn ProcessManager>> =
        vec![Arc::new(kraliki_commands::process::cloner::CampaignCloner)];
    managers.push(Arc::new(kraliki_commands::process::agents::AgentTimers));
    managers.push(Arc::new(kraliki_commands::process::router::Router::new()));
    managers.push(Arc::new(kraliki_voice::calls::agent_legs::CarrierLegs::new(calls.clone())));
    if settings.dialer.enabled {
        managers.push(dialer.clone());
    }
    managers
}

/// Every projection this build knows, in one place.
pub fn projections(sink: Sink) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(CompanyProjection),
        Arc::new(UserProjection),
        Arc::new(ServiceAccountProjection),
        Arc::new(kraliki_projections::campaign::CampaignProjection),
        Arc::new(kraliki_projections::campaign_template::TemplateProjection),
        Arc::new(kraliki_projections::call_list::CallListProjection),
        Arc::new(kraliki_projections::contact::ContactProjection),
        Arc::new(kraliki_projections::contact_import::ImportProjection),
        Arc::new(kraliki_projections::do_not_call::DoNotCallProjection),
        Arc::new(kraliki_projections::call::CallProjection),
        Arc::new(kraliki_projections::tenant_settings::TenantSettingsProjection),
        Arc::new(kraliki_projections::ivr_flow::IvrFlowProjection),
        Arc::new(kraliki_projections::ivr_visit::IvrVisitProjection),
        Arc::new(kraliki_projections::agent::AgentProjection),
        Arc::new(kraliki_projections::team::TeamProjection),
        Arc::new(kraliki_projections::queue::QueueProjection),
        Arc::new(kraliki_projections::queued_call::QueuedCallProjection),
        Arc::new(kraliki_projections::routing_rule::RoutingRuleProjection),
        Arc::new(EventPublisher::new(sink)),
    ]
}

pub fn runner_settings(settings: &Settings) -> RunnerSettings {
    RunnerSettings {
        batch_size: settings.projections.batch_size,
        rebuild_batch_size: settings.projections.rebuild_batch_size,
        linger: Duration::from_millis(settings.projections.linger_ms),
        poll_interval: Duration::from_millis(settings.projections.poll_interval_ms),
        ..RunnerSettings::default()
    }
}

impl Application {
    /// Connects, migrates (if configured), starts the runners and binds the listener. The server
    /// is serving when this returns.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Vec::new()).await
    }

    /// Like `build`, with extra projections run beside the built-in ones (tests use this).
    pub async fn build_with(settings: Settings, extra: Vec<Arc<dyn Projection>>) -> anyhow::Result<Self> {
        Self::build_full(settings, extra, Vec::new()).await
    }

    /// Like `build_with`, with extra process managers too (tests use this).
    pub async fn build_full(
        settings: Settings,
        extra: Vec<Arc<dyn Projection>>,
        extra_managers: Vec<Arc<dyn ProcessManager>>,
    ) -> anyhow::Result<Self> {
        let problems = settings.providers.problems();
        if !problems.is_empty() {
            anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }
        let pool = crate::db::connect(&settings).await?;
        if settings.database.migrate_on_start {
            crate::db::migrate(&pool).await?;
        }
        let shutdown = CancellationToken::new();
        let wake = Wake::new();
        let mut tasks = vec![tokio::spawn(wake.clone().run(pool.clone(), shutdown.clone()))];
        let (sink, live) = event_sink(&settings).await?;
        let create_keys = settings.environment == crate::config::Environment::Development;
        let keys = Arc::new(crate::auth::KeyRing::load(&settings.keys_dir(), create_keys)?);
        let principals = crate::auth::Principals::new(pool.clone());
        tasks.push(tokio::spawn(principals.clone().listen(shutdown.clone())));
        let dispatcher = Dispatcher::new(pool.clone(), wake.clone()).observe(Arc::new(principals.clone()));
        let calls = CallService::new(settings.providers.clone(), dispatcher.clone(), pool.clone())?
            .with_webhook_policy(settings.ivr.webhook_policy());
        let managers = ManagerEnv {
            read_wait: Duration::from_millis(settings.http.read_wait_max_ms),
            ..ManagerEnv::new(dispatcher.clone(), pool.clone(), wake.clone())
        };
        let dialer =
            Arc::new(Dialer::new(calls.clone(), Duration::from_millis(settings.dialer.tick_ms.max(10))));
        let mut running = process_managers(&settings, &dialer, &calls);
        running.extend(extra_managers);
        let mut all = projections(sink);
        all.extend(
            running
                .iter()
                .map(|m| Arc::new(Managed::new(m.clone(), managers.clone())) as Arc<dyn Projection>),
        );
        all.extend(extra);
        let supervisor = Supervisor::new(pool.clone(), wake.clone(), runner_settings(&settings), all);
        if settings.projections.run {
            supervisor.register().await.context("registering the projections' builds")?;
            tasks.push(tokio::spawn(supervisor.clone().run(shutdown.clone())));
            let poll = Duration::from_millis(settings.projections.poll_interval_ms);
            tasks.push(tokio::spawn(TimerRunner::new(managers.clone(), running, poll).run(shutdown.clone())));
        }
        let limits = kraliki_commands::import::ImportLimits {
            batch_size: settings.imports.batch_size.max(1),
            max_line_bytes: settings.imports.max_line_bytes,
        };
        let importer = kraliki_commands::import::Importer::start(
            dispatcher.clone(),
            pool.clone(),
            wake.clone(),
            limits,
            shutdown.clone(),
        );
        match kraliki_commands::import::recover_unfinished(&dispatcher, &pool).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(imports = n, "imports interrupted by a stop were marked failed"),
            Err(error) => tracing::warn!(%error, "could not check for interrupted imports"),
        }
        let state = AppState {
            calls,
            managers,
            dialer,
            keys,
            principals,
            settings: Arc::new(settings),
            dispatcher,
            importer,
            pool,
            wake,
            supervisor,
            metrics: crate::telemetry::metrics(),
            live,
        };
        let listener = TcpListener::bind(state.settings.bind)
            .await
            .with_context(|| format!("cannot listen on {}", state.settings.bind))?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let stop = shutdown.clone();
        // No Nagle: media frames (20 ms of audio) must not wait for the peer's delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
        });
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "HTTP server failed");
            }
        }));
        tracing::info!(%addr, "kraliki is listening");
        Ok(Self { addr, state, shutdown, tasks })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops gracefully: the HTTP server drains, runners finish the batch in flight.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Runs until SIGINT/SIGTERM, then stops gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let token = self.shutdown.clone();
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down: finishing in-flight work"),
            _ = token.cancelled() => {}
        }
        self.stop().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The detail of the fallback's 404: no route matched (as opposed to a resource not found).
pub const NO_SUCH_ROUTE: &str = "no such route";

/// The OpenAPI document of every route.
pub fn openapi() -> serde_json::Value {
    let mut doc = crate::routes::router().split_for_parts().1;
    doc.merge(crate::routes::uploads().split_for_parts().1);
    doc.merge(crate::routes::large_json().split_for_parts().1);
    crate::routes::finish_document(doc)
}

pub fn router(state: AppState) -> Router {
    let http = &state.settings.http;
    let origins: Vec<HeaderValue> =
        http.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::ACCEPT_LANGUAGE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("kraliki-min-position"),
        ])
        .expose_headers([header::ETAG, header::LOCATION, HeaderName::from_static("kraliki-position")]);
    let request_id = HeaderName::from_static("x-request-id");
    let body_limit = http.body_limit_bytes;
    let timeout = Duration::from_secs(http.request_timeout_secs);
    let (api, mut doc) = crate::routes::router().split_for_parts();
    let (uploads, uploads_doc) = crate::routes::uploads().split_for_parts();
    let (large, large_doc) = crate::routes::large_json().split_for_parts();
    doc.merge(uploads_doc);
    doc.merge(large_doc);
    let openapi = crate::routes::finish_document(doc);
    let bulk_limit = state.settings.imports.max_bulk_bytes;
    let upload_limit = usize::try_from(state.settings.imports.max_upload_bytes).unwrap_or(usize::MAX);
    let api = api
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", openapi))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout));
    // Uploads are streamed to disk: a larger limit and no timeout; the spool enforces the size.
    let uploads = uploads
        .layer(axum::extract::DefaultBodyLimit::max(upload_limit))
        .layer(RequestBodyLimitLayer::new(upload_limit));
    let large = large
        .layer(axum::extract::DefaultBodyLimit::max(bulk_limit))
        .layer(RequestBodyLimitLayer::new(bulk_limit))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout));
    api.merge(uploads)
        .merge(large)
        .fallback(|| async { crate::error::ApiError::not_found().detail(NO_SUCH_ROUTE) })
        // Outside the limit and timeout layers, so their bare answers become problems too.
        .layer(axum::middleware::from_fn(crate::error::problem_layer))
        // Outside the problem layer: counts the answer the client gets. A route layer (it
        // runs after routing), so it labels by the matched route template.
        .layer(axum::middleware::from_fn(crate::telemetry::track_http))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
