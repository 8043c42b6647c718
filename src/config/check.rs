//! Validation of a resolved [`ServerConfig`]: one plain sentence per problem. `serve` refuses to
//! start with any; `chatvault config check` prints them.

use crate::crypto::{MasterKey, MasterKeySource};

use super::ServerConfig;

/// Every problem with `config` and the master key source; empty when all is well.
pub fn problems(config: &ServerConfig, master: &MasterKeySource) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = MasterKey::load(master) {
        problems.push(e.to_string());
    }
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        problems.push(format!(
            "data_dir: {} is not a directory",
            config.data_dir.display()
        ));
    }
    check_llm(config, &mut problems);
    if let Err(e) = crate::cluster::ClusterSecret::load(config.cluster_secret_file.as_deref()) {
        problems.push(e.to_string());
    }
    if let Some(tls) = &config.tls
        && let Err(problem) = crate::http::tls::load(tls)
    {
        problems.push(problem);
    }
    let positive = [
        ("max_open_tenants", config.max_open_tenants),
        (
            "handshakes_per_minute",
            config.handshakes_per_minute as usize,
        ),
        (
            "http_requests_per_minute",
            config.http_requests_per_minute as usize,
        ),
        ("max_sockets", config.max_sockets),
        ("max_sockets_per_ip", config.max_sockets_per_ip),
        (
            "transport.max_connections",
            config.transport.max_connections,
        ),
        ("retention.batch", config.retention.batch),
    ];
    for (key, value) in positive {
        if value == 0 {
            problems.push(format!("{key} must be at least 1"));
        }
    }
    if config.max_sockets > 0 && config.max_sockets_per_ip > config.max_sockets {
        problems.push("max_sockets_per_ip must not exceed max_sockets".into());
    }
    if config.retention.stall_after <= config.retention.interval {
        problems.push("retention.stall_after must be longer than retention.interval".into());
    }
    problems
}

fn check_llm(config: &ServerConfig, problems: &mut Vec<String>) {
    let llm = &config.llm;
    if let Some(base) = &llm.base_url {
        match url::Url::parse(base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => problems.push(format!("llm.base_url: `{base}` is not an http(s) URL")),
        }
    }
    if !is_env_var_name(&llm.api_key_env) {
        // Someone pasted the key itself where its variable's name belongs.
        problems.push(
            "llm.api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), \
             never the key itself"
                .into(),
        );
    }
    if llm.model.trim().is_empty() {
        problems.push("llm.model must not be empty".into());
    }
    if llm.timeouts.first_token.is_zero() || llm.timeouts.first_token > llm.timeouts.total {
        problems.push(
            "llm.first_token_timeout must be above zero and at most llm.total_timeout".into(),
        );
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
