//! The HTTP side: `/metrics`, the status page (`status.rs`), health and readiness, and
//! configuration reload (`POST /-/reload` and SIGHUP). A reload that fails
//! keeps the old configuration running and says why.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::{Bytes, Frame};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::agent::{Agent, Os};
use crate::config::{AgentConfig, Config, ConfigErrors};
use crate::prober::probe::icmp::Pingers;
use crate::prober::render;
use crate::prober::results::Results;
use crate::prober::scheduler::{ScheduleError, Scheduler};
use crate::prober::shard::Shard;
use crate::web::{ConnectionMetrics, Limits, WebConfig};
use scrape::Exposition;

pub mod scrape;
pub mod status;

/// `--web.max-requests` by default, as node_exporter's.
pub const DEFAULT_MAX_REQUESTS: usize = 40;

/// How the exporter is started.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The YAML configuration; `None` runs with built-in defaults.
    pub config_file: Option<PathBuf>,
    /// TLS and basic auth for the exporter's own web server.
    pub web: Option<Arc<WebConfig>>,
    /// Where the origin agent meets the OS.
    pub os: Os,
    /// Agent collectors turned off (`--no-collector.NAME`).
    pub disabled_collectors: Vec<String>,
    /// Probe only this shard of the sites (`--shard I/N`).
    pub shard: Option<Shard>,
    /// Scrapes of `/metrics` served at once (`--web.max-requests`); one
    /// more is answered 503 at once. 0: no limit.
    pub max_requests: usize,
    /// The web server's own bounds (`--web.max-connections`, header
    /// budget and timeout).
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config_file: None,
            web: None,
            os: Os::default(),
            disabled_collectors: Vec::new(),
            max_requests: DEFAULT_MAX_REQUESTS,
            limits: Limits::default(),
            shard: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Schedule(#[from] ScheduleError),
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("loading the configuration: {0}")]
    Load(#[from] LoadError),
    #[error("serving HTTP: {0}")]
    Serve(#[from] std::io::Error),
}

struct App {
    settings: Settings,
    exposition: Exposition,
    results: Arc<Results>,
    pingers: Arc<Pingers>,
    scheduler: Mutex<Scheduler>,
    /// Places for scrapes in flight; `None` without a limit.
    scrape_slots: Option<Arc<Semaphore>>,
    /// The agent's settings as last applied (`None`: no agent).
    agent_config: Mutex<Option<AgentConfig>>,
    /// Reloads asked for so far; the last one done, one at a time.
    asked: AtomicU64,
    reloaded: tokio::sync::Mutex<Reloaded>,
}

/// The last reload done: requests numbered up to `generation` share its
/// outcome, since it read the file after they were made.
struct Reloaded {
    generation: u64,
    outcome: Result<(), String>,
}

/// Serve the exporter on `listener` until `shutdown` completes. The first
/// configuration load must succeed; later reloads may fail safely.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let results = Arc::new(Results::new());
    let pingers = Arc::new(Pingers::new());
    let exposition = Exposition::new(Arc::clone(&results), Arc::clone(&pingers));
    let scrape_slots =
        (settings.max_requests > 0).then(|| Arc::new(Semaphore::new(settings.max_requests)));
    let app = Arc::new(App {
        settings,
        exposition,
        results,
        pingers,
        scheduler: Mutex::new(Scheduler::default()),
        scrape_slots,
        agent_config: Mutex::new(None),
        asked: AtomicU64::new(0),
        reloaded: tokio::sync::Mutex::new(Reloaded {
            generation: 0,
            outcome: Ok(()),
        }),
    });
    app.load_and_apply().await?;
    tokio::spawn(reload_on_sighup(Arc::clone(&app)));

    let router = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(serve_metrics))
        .route("/-/healthy", get(|| async { "Healthy.\n" }))
        .route("/-/ready", get(|| async { "Ready.\n" }))
        .route("/-/reload", post(reload))
        .with_state(Arc::clone(&app))
        // gzip when the scraper asks for it (Prometheus does), at the
        // fastest level: a 1,000-site scrape shrinks about tenfold.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .gzip(true)
                .quality(tower_http::CompressionLevel::Fastest),
        );
    let web = app.settings.web.clone();
    let metrics = ConnectionMetrics {
        open: app.exposition.me.web_connections.clone(),
        refused: app.exposition.me.web_connections_refused.clone(),
    };
    let limits = app.settings.limits.clone();
    crate::web::serve_with(listener, router, web, limits, metrics, shutdown).await?;
    // Stop the probes before returning.
    std::mem::take(&mut *app.scheduler.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(())
}

impl App {
    /// Reload on request (`POST /-/reload`, SIGHUP). Requests that arrive
    /// while a reload runs are coalesced: they wait for the next one and
    /// share its outcome, so a storm of requests costs one reload at a time.
    async fn reload(&self) -> Result<(), String> {
        let mine = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.reloaded.lock().await;
        if done.generation >= mine {
            return done.outcome.clone();
        }
        let upto = self.asked.load(Ordering::SeqCst);
        let outcome = self.load_and_apply().await.map_err(|e| e.to_string());
        *done = Reloaded {
            generation: upto,
            outcome: outcome.clone(),
        };
        outcome
    }

    /// Load the configuration and apply it: only what changed restarts.
    async fn load_and_apply(&self) -> Result<(), LoadError> {
        let loaded = self.load().await;
        self.exposition
            .me
            .config_last_reload_successful
            .set(i64::from(loaded.is_ok()));
        let mut config = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration not loaded; the previous one keeps running");
                return Err(e);
            }
        };
        if let Some(shard) = self.settings.shard {
            let all = config.sites.len();
            config.sites.retain(|s| shard.owns(&s.name));
            tracing::info!(%shard, sites = config.sites.len(), of = all, "probing this shard's sites");
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.exposition
            .me
            .config_last_reload_success_timestamp_seconds
            .set(now);
        self.exposition.me.sites.set(config.sites.len() as i64);
        let icmp = config.sites.iter().any(|s| s.icmp);
        if icmp {
            // A failure is logged once by the pingers.
            let _ = self.pingers.check();
        }
        self.exposition.set_icmp_in_use(icmp);
        let prepared = Scheduler::prepare(
            &config,
            Arc::clone(&self.pingers),
            Arc::clone(&self.results),
        )
        .inspect_err(|_| self.exposition.me.config_last_reload_successful.set(0))?;
        // Without a config file, this host is an origin with defaults.
        let agent_config = match (&config.agent, &self.settings.config_file) {
            (Some(a), _) => Some(a.clone()),
            (None, None) => Some(AgentConfig::default()),
            (None, Some(_)) => None,
        };
        let agent_changed = {
            let mut current = self.agent_config.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *current != agent_config;
            *current = agent_config.clone();
            changed
        };
        if agent_changed {
            let agent = agent_config
                .map(|a| Agent::start(&a, &self.settings.os, &self.settings.disabled_collectors));
            self.exposition.set_agent(agent);
        }
        let names: Vec<String> = config.sites.iter().map(|s| s.name.clone()).collect();
        let changes = self
            .scheduler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(prepared);
        self.results.retain_sites(|n| names.iter().any(|k| k == n));
        if changes.none() && !agent_changed {
            tracing::info!(sites = names.len(), "configuration loaded, unchanged");
        } else {
            tracing::info!(
                sites = names.len(),
                kept = changes.kept,
                restarted = changes.restarted,
                started = changes.started,
                stopped = changes.stopped,
                agent_restarted = agent_changed,
                "configuration loaded"
            );
        }
        Ok(())
    }

    async fn load(&self) -> Result<Config, LoadError> {
        match &self.settings.config_file {
            None => Ok(Config::default()),
            Some(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Config::load(&path))
                    .await
                    .unwrap_or_else(|e| panic!("configuration loader panicked: {e}"))
                    .map_err(LoadError::from)
            }
        }
    }
}

async fn reload_on_sighup(app: Arc<App>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        let _ = app.reload().await;
    }
}

/// `/metrics`: at most `--web.max-requests` at once, counted from the
/// render until the body is sent (the rendered text is held that long);
/// one more is answered 503 at once, as node_exporter does.
async fn serve_metrics(State(app): State<Arc<App>>) -> Response {
    let slot = match &app.scrape_slots {
        None => None,
        Some(slots) => match Arc::clone(slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                app.exposition.me.web_scrapes_refused.inc();
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "Limit of concurrent requests reached ({}), try again later.\n",
                        app.settings.max_requests
                    ),
                )
                    .into_response();
            }
        },
    };
    match app.exposition.render() {
        Ok((head, sites)) => (
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            Body::new(ScrapeBody {
                head: Bytes::from(head),
                sites,
                _slot: slot,
            }),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// A scrape, handed to hyper a piece at a time: the head, then the sites'
/// series, each piece rendered when hyper asks for it (once the previous
/// ones are nearly written), so a scrape holds one piece of text, and its
/// place under `--web.max-requests` until its last piece is taken.
struct ScrapeBody {
    head: Bytes,
    sites: render::Pieces,
    _slot: Option<OwnedSemaphorePermit>,
}

const SCRAPE_PIECE: usize = 64 * 1024;

impl hyper::body::Body for ScrapeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(SCRAPE_PIECE);
            return Poll::Ready(Some(Ok(Frame::data(self.head.split_to(n)))));
        }
        let mut piece = String::with_capacity(SCRAPE_PIECE + 4 * 1024);
        if !self.sites.fill(&mut piece, SCRAPE_PIECE) || piece.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(piece)))))
    }
}

async fn reload(State(app): State<Arc<App>>) -> Response {
    match app.reload().await {
        Ok(()) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration not reloaded, the previous one keeps running:\n{e}\n"),
        )
            .into_response(),
    }
}

/// `/`: the status page (`status.rs`).
async fn landing(State(app): State<Arc<App>>, Query(q): Query<status::Query>) -> Response {
    let agent = app
        .agent_config
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    let (code, page) = {
        let scheduler = app.scheduler.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = status::Context {
            results: &app.results,
            sites: &*scheduler,
            agent,
        };
        status::render(&ctx, &q)
    };
    (code, Html(page)).into_response()
}
