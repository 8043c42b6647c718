//! The TOML configuration file (`--config FILE`): its shape and how it lands on a
//! [`ServerConfig`]. It is the lowest layer: the environment and flags override it. Secrets are
//! never inline: the master key is named by `master_key_file`, the LLM key by `llm.api_key_env`.
//! Every problem found is collected (one line each), so an operator fixes them in one go.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ServerConfig, TlsFiles};

/// Keys that would hold a secret inline; refused wherever they appear.
const INLINE_SECRETS: &[&str] = &[
    "master_key",
    "cluster_secret",
    "api_key",
    "llm_api_key",
    "openai_api_key",
    "secret",
    "password",
    "token",
];

/// The file as written. Every field is optional: an absent one keeps the default.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub master_key_file: Option<PathBuf>,
    pub cluster_secret_file: Option<PathBuf>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_open_tenants: Option<usize>,
    pub durability: Option<String>,
    pub handshakes_per_minute: Option<u32>,
    pub http_requests_per_minute: Option<u32>,
    pub max_sockets: Option<usize>,
    pub max_sockets_per_ip: Option<usize>,
    pub history_budget_tokens: Option<u32>,
    pub idle_timeout: Option<String>,
    pub ping_interval: Option<String>,
    pub shutdown_grace: Option<String>,
    pub session_idle: Option<String>,
    pub session_absolute: Option<String>,
    pub llm: LlmSection,
    pub tls: TlsSection,
    pub transport: TransportSection,
    pub retention: RetentionSection,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

/// `[llm]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LlmSection {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub first_token_timeout: Option<String>,
    pub total_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TlsSection {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

/// `[transport]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TransportSection {
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

/// `[retention]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RetentionSection {
    pub interval: Option<String>,
    pub batch: Option<usize>,
    pub stall_after: Option<String>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

impl FileConfig {
    /// Reads and parses `path`; a file that cannot be read or parsed is one problem.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned() + &span_hint(&e, text))
    }

    /// Unknown keys and inline secrets, one problem each.
    pub fn key_problems(&self) -> Vec<String> {
        let sections: [(&str, &BTreeMap<String, toml::Value>); 5] = [
            ("", &self.unknown),
            ("llm.", &self.llm.unknown),
            ("tls.", &self.tls.unknown),
            ("transport.", &self.transport.unknown),
            ("retention.", &self.retention.unknown),
        ];
        let mut problems = Vec::new();
        for (prefix, keys) in sections {
            for key in keys.keys() {
                problems.push(if INLINE_SECRETS.contains(&key.as_str()) {
                    inline_secret_problem(&format!("{prefix}{key}"))
                } else {
                    format!("unknown setting `{prefix}{key}`")
                });
            }
        }
        problems
    }

    /// Writes every value present onto `config`; values that do not parse are problems.
    pub fn apply(&self, config: &mut ServerConfig, problems: &mut Vec<String>) {
        let mut p = Parser { problems };
        if let Some(bind) = &self.bind {
            p.set(
                &mut config.bind,
                "bind",
                bind.parse::<SocketAddr>().map_err(|e| e.to_string()),
            );
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(proxies) = &self.trusted_proxies {
            config.trusted_proxies.clear();
            for proxy in proxies {
                match proxy.parse() {
                    Ok(net) => config.trusted_proxies.push(net),
                    Err(_) => p.problem(format!(
                        "trusted_proxies: `{proxy}` is not a CIDR like 10.0.0.0/8"
                    )),
                }
            }
        }
        set_some(&mut config.max_open_tenants, self.max_open_tenants);
        if let Some(raw) = &self.durability {
            match crate::db::Durability::parse(raw) {
                Some(durability) => config.durability = durability,
                None => p.problem(format!("durability: `{raw}` is not one of full, normal")),
            }
        }
        if let Some(path) = &self.cluster_secret_file {
            config.cluster_secret_file = Some(path.clone());
        }
        set_some(
            &mut config.handshakes_per_minute,
            self.handshakes_per_minute,
        );
        set_some(
            &mut config.http_requests_per_minute,
            self.http_requests_per_minute,
        );
        set_some(&mut config.max_sockets, self.max_sockets);
        set_some(&mut config.max_sockets_per_ip, self.max_sockets_per_ip);
        set_some(
            &mut config.history_budget_tokens,
            self.history_budget_tokens,
        );
        p.duration(&mut config.idle_timeout, "idle_timeout", &self.idle_timeout);
        p.duration(
            &mut config.ping_interval,
            "ping_interval",
            &self.ping_interval,
        );
        p.duration(
            &mut config.shutdown_grace,
            "shutdown_grace",
            &self.shutdown_grace,
        );
        p.duration(&mut config.session_idle, "session_idle", &self.session_idle);
        p.duration(
            &mut config.session_absolute,
            "session_absolute",
            &self.session_absolute,
        );

        let llm = &self.llm;
        if let Some(url) = &llm.base_url {
            config.llm.base_url = Some(url.clone()).filter(|u| !u.is_empty());
        }
        set_some(&mut config.llm.model, llm.model.clone());
        set_some(&mut config.llm.api_key_env, llm.api_key_env.clone());
        p.duration(
            &mut config.llm.timeouts.first_token,
            "llm.first_token_timeout",
            &llm.first_token_timeout,
        );
        p.duration(
            &mut config.llm.timeouts.total,
            "llm.total_timeout",
            &llm.total_timeout,
        );
        p.duration(
            &mut config.llm.connect_timeout,
            "llm.connect_timeout",
            &llm.connect_timeout,
        );

        match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => {
                config.tls = Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (None, None) => {}
            _ => p.problem("tls: give both `cert` and `key`, or neither".into()),
        }

        set_some(
            &mut config.transport.max_connections,
            self.transport.max_connections,
        );
        set_some(
            &mut config.transport.max_header_bytes,
            self.transport.max_header_bytes,
        );
        p.duration(
            &mut config.transport.header_read_timeout,
            "transport.header_read_timeout",
            &self.transport.header_read_timeout,
        );

        set_some(&mut config.retention.batch, self.retention.batch);
        p.duration(
            &mut config.retention.interval,
            "retention.interval",
            &self.retention.interval,
        );
        p.duration(
            &mut config.retention.stall_after,
            "retention.stall_after",
            &self.retention.stall_after,
        );
    }
}

/// The problem line for a secret written inline.
pub fn inline_secret_problem(key: &str) -> String {
    let instead = if key.contains("master") {
        "name a file with `master_key_file` (mode 0600) or set CHATVAULT_MASTER_KEY"
    } else {
        "name the environment variable that holds it with `llm.api_key_env`"
    };
    format!("`{key}`: secrets are never written in the config file; {instead}")
}

fn set_some<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Collects problems while setting values.
struct Parser<'a> {
    problems: &'a mut Vec<String>,
}

impl Parser<'_> {
    fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    fn set<T>(&mut self, slot: &mut T, key: &str, value: Result<T, String>) {
        match value {
            Ok(value) => *slot = value,
            Err(e) => self.problem(format!("{key}: {e}")),
        }
    }

    fn duration(&mut self, slot: &mut Duration, key: &str, value: &Option<String>) {
        if let Some(text) = value {
            let parsed = humantime::parse_duration(text)
                .map_err(|_| format!("`{text}` is not a duration like \"30s\", \"5m\" or \"2h\""));
            self.set(slot, key, parsed);
        }
    }
}

/// " (line N)" for a parse error, when the span is known.
fn span_hint(error: &toml::de::Error, text: &str) -> String {
    error
        .span()
        .map(|span| {
            format!(
                " (line {})",
                text[..span.start.min(text.len())].matches('\n').count() + 1
            )
        })
        .unwrap_or_default()
}
