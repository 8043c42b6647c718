//! chatvault: a privacy-first backend for embeddable AI chat widgets.
//!
//! Map of the crate:
//!
//! - [`cli`] — the command line (one file per subcommand); `main.rs` only dispatches here.
//! - [`app`] — the shared [`app::AppState`] and `serve(listener, state, shutdown)`.
//! - [`http`] — routes: health, widget script, demo page, widget socket; security headers.
//! - [`gateway`] — the widget WebSocket: frames, the per-socket session, reply streaming.
//! - [`llm`] — prompt assembly (`untrusted_document` wrapping), OpenAI-compatible and offline backends.
//! - [`store`] — the data directory as one value, and tenant create/purge/delete/export-key.
//! - [`vault`] — per-tenant SQLCipher files: bounded open set, schema, repository functions, purge.
//! - [`catalog`] — tenants, origins, widget and API keys, settings, the hash-chained audit log.
//! - [`knowledge`] — the per-tenant knowledge base: documents reduced to text, passages, BM25 retrieval.
//! - [`keyring`] — wrapped per-tenant DEKs; destroying one makes that tenant's bytes unreadable.
//! - [`db`] — opening SQLCipher files with raw keys, migrations, the worker thread that owns a connection.
//! - [`crypto`] — master key, DEK wrapping, HKDF key derivation, token hashing.
//! - [`datadir`] — paths, private permissions, the trash, the server lock.
//! - [`backup`] — online backup (never the keyring), restore, integrity verification.
//! - [`rotation`] — master key rotation, crash-safe behind a commit marker.
//! - [`retention`] — the sweeper that deletes expired conversations, and its heartbeat.
//! - [`redact`] — PII redaction (e-mail, phone, card, IBAN, secret, IP) into typed placeholders.
//! - [`policy`] — the privacy-policy paragraph built from a tenant's live settings.
//! - [`fault`] — crash injection points for tests (`CHATVAULT_FAULT`).
//! - [`domain`] — parsed identifiers (tenant ids, origins, keys, conversation ids).
//! - [`limits`] — bounded maps of per-key rate limiters.
//! - [`safety`] — the optional content-safety floor (moderation endpoint or built-in).
//! - [`webhooks`] — signed outgoing event deliveries with retries and a delivery log.
//! - [`metrics`] — counters and histograms for `/metrics` (Prometheus text), kept per app.
//! - [`cluster`] — many nodes: per-tenant gates, `tenant move` bundles, the HAProxy tenant map.
//! - [`config`], [`error`], [`telemetry`].

pub mod app;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod datadir;
pub mod db;
pub mod domain;
pub mod error;
pub mod fault;
pub mod gateway;
pub mod http;
pub mod keyring;
pub mod knowledge;
pub mod limits;
pub mod llm;
pub mod metrics;
pub mod policy;
pub mod redact;
pub mod retention;
pub mod rotation;
pub mod safety;
pub mod store;
pub mod telemetry;
pub mod vault;
pub mod webhooks;

pub use error::{Error, Result};
