//! Logging setup: text or JSON lines on stderr, filtered by `RUST_LOG` (default `info`).
//! Log lines carry tenant, route, status, duration and client IP, never content or secrets.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
