//! Black-box tests: the real server on loopback, a real fake LLM, real clients.

mod cli;
mod fake_llm;
mod handshake;
mod helpers;
mod interop;
mod prompt_wrapping;
mod upstream;
mod widget_frames;
