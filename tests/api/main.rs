//! Black-box tests: the real server on loopback, a real fake LLM, real clients.

mod backup;
mod abuse;
mod cli;
mod config;
mod cost_caps;
mod crash;
mod disk_full;
mod erasure;
mod customer_api;
mod fake_llm;
mod handshake;
mod hostile;
mod helpers;
mod interop;
mod knowledge;
mod metrics;
mod pages;
mod policy;
mod portal_sessions;
mod prompt_wrapping;
mod redaction;
mod retention;
mod rotation;
mod upstream;
mod webhooks;
mod widget_frames;
