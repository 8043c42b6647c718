//! Crash injection for tests: `CHATVAULT_FAULT=<point>` makes the process abort (no unwinding,
//! no destructors, nothing flushed) when it reaches that point, so tests can prove that a crash
//! there loses nothing. Unset in production, where every point is a no-op.

/// Aborts the process if `CHATVAULT_FAULT` names this point.
pub fn point(name: &str) {
    if std::env::var("CHATVAULT_FAULT").is_ok_and(|wanted| wanted == name) {
        eprintln!("error: injected fault at {name}");
        std::process::abort();
    }
}
