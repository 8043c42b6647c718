//! Typed server configuration. Every knob has a default that is safe for production; secrets
//! are never held here, only where to find them (an environment variable's name).

pub mod check;
pub mod file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::llm::Timeouts;
use crate::retention::RetentionConfig;

/// Where the model lives.
#[derive(Clone, Debug, Default)]
pub struct LlmConfig {
    /// OpenAI-compatible API root; `None` selects the built-in offline responder.
    pub base_url: Option<String>,
    pub model: String,
    /// Name of the environment variable that holds the API key.
    pub api_key_env: String,
    pub timeouts: Timeouts,
    pub connect_timeout: Duration,
    /// Embeddings model (same base URL and key); `None` keeps retrieval BM25-only.
    pub embeddings_model: Option<String>,
    /// Moderation model for tenants whose safety mode is `endpoint` (same base URL and key).
    pub moderation_model: String,
    /// Failures in a row that open the circuit breaker, and how long it stays open.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

/// The certificate chain and private key (PEM files) for built-in TLS; reloaded on SIGHUP.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything `serve` needs besides the master key.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub llm: LlmConfig,
    /// Tenant files kept open at once (LRU).
    pub max_open_tenants: usize,
    /// Whether each tenant commit is fsynced (`full`, the default) or only reaches the OS.
    pub durability: crate::db::Durability,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// WebSocket handshakes per client IP per minute (also the burst).
    pub handshakes_per_minute: u32,
    /// Token budget for earlier turns sent with each request.
    pub history_budget_tokens: u32,
    /// Submits a connection may queue behind the reply in progress before `busy`.
    pub reply_queue: usize,
    pub idle_timeout: Duration,
    pub ping_interval: Duration,
    /// How long shutdown waits for replies in flight.
    pub shutdown_grace: Duration,
    /// The retention sweeper: pause between passes, batch size, stall threshold, clock.
    pub retention: RetentionConfig,
    /// Demo mode: serves the sample customer page at `/` and allows session cookies over plain
    /// HTTP (never otherwise).
    pub demo: bool,
    /// Transport limits: connections, header deadline and size.
    pub transport: crate::http::server::TransportLimits,
    /// Concurrent widget sockets, in all and per client IP.
    pub max_sockets: usize,
    pub max_sockets_per_ip: usize,
    /// HTTP requests per client IP per minute, on every route (also the burst).
    pub http_requests_per_minute: u32,
    /// Portal sessions end after this long without a request…
    pub session_idle: Duration,
    /// …and after this long in any case.
    pub session_absolute: Duration,
    /// Serve HTTPS from these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The shared cluster secret's file (else `CHATVAULT_CLUSTER_SECRET`); with neither, the
    /// node-to-node `/ops/` routes are off.
    pub cluster_secret_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./tenants"),
            llm: LlmConfig {
                base_url: None,
                model: "gpt-4o-mini".into(),
                api_key_env: "OPENAI_API_KEY".into(),
                timeouts: Timeouts::default(),
                connect_timeout: Duration::from_secs(5),
                moderation_model: "omni-moderation-latest".into(),
                embeddings_model: None,
                breaker_threshold: 5,
                breaker_cooldown: Duration::from_secs(30),
            },
            max_open_tenants: 256,
            durability: crate::db::Durability::Full,
            trusted_proxies: Vec::new(),
            handshakes_per_minute: 60,
            history_budget_tokens: 2000,
            reply_queue: 2,
            idle_timeout: Duration::from_secs(300),
            ping_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            retention: RetentionConfig::default(),
            demo: false,
            transport: crate::http::server::TransportLimits::default(),
            max_sockets: 20_000,
            max_sockets_per_ip: 64,
            http_requests_per_minute: 1200,
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
            tls: None,
            cluster_secret_file: None,
        }
    }
}
