//! `chatvault serve`: bind, print `listening on http://ADDR`, serve until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;

use super::GlobalArgs;
use crate::app::{self, App};
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::llm::offline::OfflineBackend;
use crate::llm::openai::OpenAiBackend;
use crate::llm::{ChatBackend, Llm};
use crate::store::Store;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Proxy CIDR whose X-Forwarded-For is trusted (repeatable).
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Tenant files kept open at once.
    #[arg(long, env = "CHATVAULT_MAX_OPEN_TENANTS", default_value_t = 256)]
    pub max_open_tenants: usize,
    /// WebSocket handshakes allowed per client IP per minute.
    #[arg(long, env = "CHATVAULT_HANDSHAKES_PER_MINUTE", default_value_t = 60)]
    pub handshakes_per_minute: u32,
}

/// Where the model is.
#[derive(Args, Debug, Clone)]
pub struct LlmArgs {
    /// OpenAI-compatible API root (e.g. https://api.openai.com/v1). Without it the offline responder answers.
    #[arg(long, env = "CHATVAULT_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    #[arg(long, env = "CHATVAULT_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,
    /// Name of the environment variable holding the API key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub llm_api_key_env: String,
}

impl ServeArgs {
    pub fn config(&self, global: &GlobalArgs) -> ServerConfig {
        let mut config = ServerConfig {
            bind: self.bind,
            data_dir: global.data_dir.clone(),
            ..ServerConfig::default()
        };
        config.llm.base_url = self.llm.llm_base_url.clone().filter(|u| !u.is_empty());
        config.llm.model = self.llm.llm_model.clone();
        config.llm.api_key_env = self.llm.llm_api_key_env.clone();
        config.trusted_proxies = self.trusted_proxies.clone();
        config.max_open_tenants = self.max_open_tenants;
        config.handshakes_per_minute = self.handshakes_per_minute;
        config
    }
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<()> {
    let config = args.config(global);
    let store = global.open_store(config.max_open_tenants)?;
    let listener = bind(config.bind).await?;
    serve_until_signal(store, config, listener).await
}

/// Binds the listener with a clear error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))
}

/// Builds the app, prints the listening line and serves until SIGINT or SIGTERM.
pub async fn serve_until_signal(
    store: Store,
    config: ServerConfig,
    listener: TcpListener,
) -> Result<()> {
    let _lock = store.dir.lock_for_server()?;
    let llm = Llm::new(backend(&config)?, config.llm.timeouts).with_breaker(config.llm.breaker_threshold, config.llm.breaker_cooldown);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = llm.backend_name(), "server starting");
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let app = App::new(store, llm, config);
    app::serve(listener, app, shutdown_signal()).await
}

fn backend(config: &ServerConfig) -> Result<Arc<dyn ChatBackend>> {
    match &config.llm.base_url {
        Some(url) => {
            let key = std::env::var(&config.llm.api_key_env)
                .ok()
                .filter(|k| !k.is_empty());
            Ok(Arc::new(OpenAiBackend::new(
                url,
                key,
                config.llm.connect_timeout,
            )?))
        }
        None => Ok(Arc::new(OfflineBackend::default())),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
