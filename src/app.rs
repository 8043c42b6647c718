//! The application state shared by every request, and `serve`: run on a listener you are
//! handed, stop on a future you are handed.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::domain::TenantId;
use crate::error::Result;
use crate::limits::{FailureWindow, KeyedLimiters};
use crate::llm::Llm;
use crate::store::Store;

/// Cheap-to-clone handle to the application.
pub type AppState = Arc<App>;

/// Built once at start.
pub struct App {
    pub store: Store,
    pub llm: Llm,
    pub config: ServerConfig,
    /// Messages per minute across all of a tenant's sockets.
    pub tenant_limits: KeyedLimiters<TenantId>,
    /// Messages per minute per conversation, across the sockets that resume it.
    pub conversation_limits: KeyedLimiters<crate::domain::ConversationId>,
    /// Failed portal sign-ins, per client IP and per account: 5 per 15 minutes.
    pub login_failures: FailureWindow<String>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Open widget sockets, in all and per client IP.
    pub sockets: Arc<crate::gateway::capacity::SocketCounter>,
    /// Embeddings for hybrid knowledge retrieval, when configured.
    pub embedder: Option<crate::knowledge::embed::Embedder>,
    /// The content-safety classifiers.
    pub safety: crate::safety::Safety,
    /// Outgoing webhook events.
    pub webhooks: crate::webhooks::Webhooks,
    /// Widget sessions, so shutdown can wait for replies in flight.
    pub sessions: TaskTracker,
    /// When the retention sweeper last completed a pass.
    pub sweeper: crate::retention::Heartbeat,
    /// Counters and histograms for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Per-tenant gates that every socket and API request passes; a tenant being moved is shut.
    pub gates: crate::cluster::gates::Gates,
    /// The shared cluster secret, when this node is part of a cluster (`/ops/` routes on).
    pub cluster: Option<crate::cluster::ClusterSecret>,
}

impl App {
    pub fn new(store: Store, llm: Llm, config: ServerConfig) -> AppState {
        Self::with_cluster(store, llm, config, None)
    }

    /// [`new`](Self::new) for a node that shares `cluster` with other nodes.
    pub fn with_cluster(
        store: Store,
        llm: Llm,
        config: ServerConfig,
        cluster: Option<crate::cluster::ClusterSecret>,
    ) -> AppState {
        let webhooks = crate::webhooks::Webhooks::start(store.catalog.clone());
        let safety = match &config.llm.base_url {
            Some(base) => {
                let key = std::env::var(&config.llm.api_key_env)
                    .ok()
                    .filter(|k| !k.is_empty());
                crate::safety::Safety::with_endpoint(base, key, &config.llm.moderation_model)
            }
            None => crate::safety::Safety::default(),
        };
        let embedder = match (&config.llm.base_url, &config.llm.embeddings_model) {
            (Some(base), Some(model)) => {
                let key = std::env::var(&config.llm.api_key_env)
                    .ok()
                    .filter(|k| !k.is_empty());
                Some(crate::knowledge::embed::Embedder::new(base, key, model))
            }
            _ => None,
        };
        Arc::new(Self {
            store,
            llm,
            config,
            tenant_limits: KeyedLimiters::new(10_000),
            conversation_limits: KeyedLimiters::new(100_000),
            login_failures: FailureWindow::new(5, std::time::Duration::from_secs(15 * 60), 100_000),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            webhooks,
            safety,
            embedder,
            sockets: Arc::default(),
            sweeper: crate::retention::Heartbeat::new(),
            metrics: crate::metrics::Metrics::default(),
            gates: crate::cluster::gates::Gates::default(),
            cluster,
        })
    }
}

/// Serves HTTP and widget sockets on `listener` until `shutdown` resolves; then stops accepting,
/// lets replies in flight finish (bounded by `shutdown_grace`) and closes sockets with 1001.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let router = crate::http::router(app.clone());
    let janitor = tokio::spawn(evict_idle_limiters(app.clone()));
    let sweeper = tokio::spawn(crate::retention::run_sweeper(app.clone()));
    let (tls, reloader) = match &app.config.tls {
        Some(files) => {
            let certs = crate::http::tls::CertStore::open(files)?;
            (
                Some(certs.acceptor()?),
                Some(crate::http::tls::reload_on_sighup(certs)?),
            )
        }
        None => (None, None),
    };
    let stop = CancellationToken::new();
    let transport =
        crate::http::server::run(listener, router, app.config.transport, tls, stop.clone());
    let token = app.shutdown.clone();
    let signal = async move {
        shutdown.await;
        token.cancel();
        stop.cancel();
    };
    tokio::join!(transport, signal);
    app.sessions.close();
    if tokio::time::timeout(app.config.shutdown_grace, app.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period ended with widget sessions still open");
    }
    janitor.abort();
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    sweeper.abort();
    Ok(())
}

async fn evict_idle_limiters(app: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        app.tenant_limits
            .evict_idle(std::time::Duration::from_secs(300));
    }
}
