//! `chatvault serve`: bind, print `listening on http://ADDR`, serve until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;

use super::GlobalArgs;
use crate::app::{self, App};
use crate::config::file::FileConfig;
use crate::config::{ServerConfig, TlsFiles};
use crate::error::{Error, Result};
use crate::llm::offline::OfflineBackend;
use crate::llm::openai::OpenAiBackend;
use crate::llm::{ChatBackend, Llm};
use crate::store::Store;

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML configuration file; the environment and flags override it.
    #[arg(long, env = "CHATVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. [default: 127.0.0.1:8080]
    #[arg(long, env = "CHATVAULT_BIND")]
    pub bind: Option<SocketAddr>,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Proxy CIDR whose X-Forwarded-For is trusted (repeatable; comma-separated in the environment).
    #[arg(
        long = "trusted-proxy",
        env = "CHATVAULT_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Tenant files kept open at once. [default: 256]
    #[arg(long, env = "CHATVAULT_MAX_OPEN_TENANTS")]
    pub max_open_tenants: Option<usize>,
    /// full: every tenant commit is fsynced before `accepted` (survives power loss); normal:
    /// commits reach the OS and are fsynced at checkpoints (survives a crash of chatvault, a power
    /// loss can take the last ones). [default: full]
    #[arg(long, env = "CHATVAULT_DURABILITY", value_parser = ["full", "normal"])]
    pub durability: Option<String>,
    /// WebSocket handshakes allowed per client IP per minute. [default: 60]
    #[arg(long, env = "CHATVAULT_HANDSHAKES_PER_MINUTE")]
    pub handshakes_per_minute: Option<u32>,
    /// HTTP requests allowed per client IP per minute. [default: 1200]
    #[arg(long, env = "CHATVAULT_HTTP_REQUESTS_PER_MINUTE")]
    pub http_requests_per_minute: Option<u32>,
    /// Widget sockets open at once, in all. [default: 20000]
    #[arg(long, env = "CHATVAULT_MAX_SOCKETS")]
    pub max_sockets: Option<usize>,
    /// Widget sockets open at once from one client IP. [default: 64]
    #[arg(long, env = "CHATVAULT_MAX_SOCKETS_PER_IP")]
    pub max_sockets_per_ip: Option<usize>,
    /// PEM certificate chain: serve HTTPS (reloaded on SIGHUP). Needs --tls-key.
    #[arg(long, env = "CHATVAULT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CHATVAULT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File holding the cluster secret (64 hex, mode 0600), the same on every node; turns on the
    /// node-to-node routes `tenant move` uses. Otherwise CHATVAULT_CLUSTER_SECRET is read.
    #[arg(long, env = "CHATVAULT_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
}

/// Where the model is.
#[derive(Args, Debug, Clone, Default)]
pub struct LlmArgs {
    /// OpenAI-compatible API root (e.g. https://api.openai.com/v1). Without it the offline responder answers.
    #[arg(long, env = "CHATVAULT_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Model name. [default: gpt-4o-mini]
    #[arg(long, env = "CHATVAULT_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Name of the environment variable holding the API key. [default: OPENAI_API_KEY]
    #[arg(long, env = "CHATVAULT_LLM_API_KEY_ENV")]
    pub llm_api_key_env: Option<String>,
    /// Embeddings model at the same base URL; when set, knowledge-base retrieval is hybrid
    /// (BM25 + cosine). Vectors are stored only in each tenant's own file.
    #[arg(long, env = "CHATVAULT_EMBEDDINGS_MODEL")]
    pub embeddings_model: Option<String>,
}

impl ServeArgs {
    /// Flags (and their environment variables) on top of the defaults: the demo's configuration.
    pub fn config(&self, global: &GlobalArgs) -> ServerConfig {
        let mut config = ServerConfig {
            data_dir: global.data_dir.clone(),
            ..ServerConfig::default()
        };
        self.overlay(&mut config);
        config
    }

    /// Defaults < config file < environment < flags, then validated. Hands back the
    /// configuration and the global options as the file completed them (data dir, key file),
    /// or every problem found.
    pub fn resolve(
        &self,
        global: &GlobalArgs,
    ) -> std::result::Result<(ServerConfig, GlobalArgs), Vec<String>> {
        let mut config = ServerConfig::default();
        let mut global = global.clone();
        let mut problems = Vec::new();
        if let Some(path) = &self.config {
            match FileConfig::load(path) {
                Ok(file) => {
                    problems.extend(file.key_problems());
                    file.apply(&mut config, &mut problems);
                    let key_in_env = std::env::var_os("CHATVAULT_MASTER_KEY").is_some();
                    if global.master_key_file.is_none() && !key_in_env {
                        global.master_key_file = file.master_key_file.clone();
                    }
                    if global.data_dir_defaulted
                        && let Some(dir) = &file.data_dir
                    {
                        global.data_dir = dir.clone();
                    }
                }
                Err(problem) => problems.push(problem),
            }
        }
        config.data_dir = global.data_dir.clone();
        self.overlay(&mut config);
        problems.extend(crate::config::check::problems(
            &config,
            &global.master_key_source(),
        ));
        if problems.is_empty() {
            Ok((config, global))
        } else {
            Err(problems)
        }
    }

    /// Writes every flag or environment value that was given onto `config`.
    fn overlay(&self, config: &mut ServerConfig) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *slot = value.clone();
            }
        }
        set(&mut config.bind, &self.bind);
        if let Some(url) = &self.llm.llm_base_url {
            config.llm.base_url = Some(url.clone()).filter(|u| !u.is_empty());
        }
        set(&mut config.llm.model, &self.llm.llm_model);
        set(&mut config.llm.api_key_env, &self.llm.llm_api_key_env);
        if let Some(model) = self.llm.embeddings_model.clone().filter(|m| !m.is_empty()) {
            config.llm.embeddings_model = Some(model);
        }
        if !self.trusted_proxies.is_empty() {
            config.trusted_proxies = self.trusted_proxies.clone();
        }
        set(&mut config.max_open_tenants, &self.max_open_tenants);
        if let Some(durability) = self
            .durability
            .as_deref()
            .and_then(crate::db::Durability::parse)
        {
            config.durability = durability;
        }
        set(
            &mut config.handshakes_per_minute,
            &self.handshakes_per_minute,
        );
        set(
            &mut config.http_requests_per_minute,
            &self.http_requests_per_minute,
        );
        set(&mut config.max_sockets, &self.max_sockets);
        set(&mut config.max_sockets_per_ip, &self.max_sockets_per_ip);
        if let Some(path) = &self.cluster_secret_file {
            config.cluster_secret_file = Some(path.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
    }
}

/// One problem becomes the error; several are printed one per line first.
pub fn refuse(problems: Vec<String>) -> Error {
    if let [only] = problems.as_slice() {
        return Error::Config(only.clone());
    }
    for problem in &problems {
        eprintln!("problem: {problem}");
    }
    Error::Config(format!(
        "{} configuration problems (listed above)",
        problems.len()
    ))
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<()> {
    let (config, global) = args.resolve(global).map_err(refuse)?;
    let global = &global;
    let store = global.open_store_with(config.max_open_tenants, config.durability)?;
    if config.durability != crate::db::Durability::Full {
        tracing::warn!(
            durability = config.durability.as_str(),
            "tenant commits are not fsynced one by one: a power loss can take the last ones"
        );
    }
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
    let llm = Llm::new(backend(&config)?, config.llm.timeouts)
        .with_breaker(config.llm.breaker_threshold, config.llm.breaker_cooldown);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = llm.backend_name(), "server starting");
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
    let cluster = crate::cluster::ClusterSecret::load(config.cluster_secret_file.as_deref())?;
    if cluster.is_some() {
        tracing::info!("cluster secret loaded: node-to-node routes are on");
    }
    let app = App::with_cluster(store, llm, config, cluster);
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
