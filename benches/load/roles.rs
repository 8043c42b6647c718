//! What the child processes run: the fake streaming LLM, the bare tokio-tungstenite echo server
//! (the transport floor) and the real chatvault server with its tenants.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use chatvault::app::{self, App};
use chatvault::catalog::settings::TenantSettings;
use chatvault::catalog::{Catalog, tenants};
use chatvault::config::ServerConfig;
use chatvault::crypto::MasterKey;
use chatvault::datadir::DataDir;
use chatvault::domain::{Origin, TenantId};
use chatvault::keyring::Keyring;
use chatvault::llm::Llm;
use chatvault::llm::openai::OpenAiBackend;
use chatvault::store::Store;
use chatvault::vault::Vault;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::children::exit_when_stdin_closes;

/// The origin every benchmark tenant allows.
pub const ORIGIN: &str = "https://bench.example";

/// Reads `--name VALUE` from the arguments.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .skip_while(|a| *a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn run(role: &str, args: &[String]) -> Result<()> {
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match role {
            "llm" => fake_llm(arg(args, "--tokens", 20), arg(args, "--token-delay-us", 0)).await,
            "echo" => echo(arg(args, "--tokens", 20)).await,
            "server" => server(args).await,
            other => anyhow::bail!("unknown role {other}"),
        }
    })
}

// ---------------------------------------------------------------------------------------------

struct Reply {
    chunks: Vec<Bytes>,
    delay: Duration,
}

/// An OpenAI-compatible `POST /v1/chat/completions` that streams `tokens` SSE chunks, each after
/// `token_delay_us`, then usage and `[DONE]`.
async fn fake_llm(tokens: usize, token_delay_us: u64) -> Result<()> {
    let chunk = |delta: serde_json::Value, usage: serde_json::Value| {
        let value = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": "fake", "choices": delta, "usage": usage});
        Bytes::from(format!("data: {value}\n\n"))
    };
    let mut chunks: Vec<Bytes> = (0..tokens)
        .map(|i| {
            let piece = if i == 0 {
                "Sure".to_owned()
            } else {
                format!(" w{i}")
            };
            chunk(
                json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
                json!(null),
            )
        })
        .collect();
    chunks.push(chunk(
        json!([]),
        json!({"prompt_tokens": 120, "completion_tokens": tokens, "total_tokens": 120 + tokens}),
    ));
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let reply = Arc::new(Reply {
        chunks,
        delay: Duration::from_micros(token_delay_us),
    });
    let router = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(reply);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("ready http://{}/v1", listener.local_addr()?);
    // Like a real provider's edge, flush each chunk at once (no Nagle delay on small writes).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}

async fn complete(State(reply): State<Arc<Reply>>, _body: Bytes) -> Response {
    let delay = reply.delay;
    let count = reply.chunks.len();
    let body = futures_util::stream::iter(0..count).then(move |i| {
        let reply = reply.clone();
        async move {
            if !delay.is_zero() && i + 2 < count {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, std::io::Error>(reply.chunks[i].clone())
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

/// A bare tokio-tungstenite server answering each text frame with the frames a reply takes
/// (`accepted`, `tokens` × `delta`, `done`): no storage, no LLM, no JSON parsing.
async fn echo(tokens: usize) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("ready {}", listener.local_addr()?);
    let hello = r#"{"type":"hello","protocol":1}"#;
    let mut frames = vec![r#"{"type":"accepted","id":"x","conversation":"c"}"#.to_owned()];
    frames.extend((0..tokens).map(|i| format!(r#"{{"type":"delta","id":"x","text":" w{i}"}}"#)));
    frames.push(r#"{"type":"done","id":"x","message":"m"}"#.to_owned());
    let frames = Arc::new(frames);
    loop {
        let (stream, _) = listener.accept().await?;
        let frames = frames.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            if ws.send(Message::text(hello)).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = ws.next().await {
                if !message.is_text() {
                    continue;
                }
                for frame in frames.iter() {
                    if ws.feed(Message::text(frame.as_str())).await.is_err() {
                        return;
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------

/// The real server (`App` + `serve`) on a fresh data directory with `--tenants N` tenants whose
/// limits are raised so the run measures throughput, not the rate limiters. Writes the widget
/// keys to `--keys FILE`. `--store plain` uses the benchmark-only plain-SQLite vault.
async fn server(args: &[String]) -> Result<()> {
    let data = DataDir::open(arg::<String>(args, "--data", String::new()))?;
    let max_open: usize = arg(args, "--max-open", 256);
    let master = MasterKey::generate();
    let catalog = Catalog::open(&data, &master)?;
    let keyring = Keyring::open(&data, &master)?;
    let vault = if arg::<String>(args, "--store", "enc".into()) == "plain" {
        Vault::plaintext_for_benchmarks(data.clone(), keyring, max_open)
    } else {
        Vault::new(data.clone(), keyring, max_open)
    };
    let gather = Duration::from_micros(arg(args, "--gather-us", 0));
    let durability =
        chatvault::db::Durability::parse(&arg::<String>(args, "--durability", "full".into()))
            .context("--durability is full or normal")?;
    let store = Store {
        catalog,
        vault: vault.with_commit_gather(gather).with_durability(durability),
        dir: data,
    };
    let count: usize = arg(args, "--tenants", 1);
    let keys = create_tenants(&store, count).await?;
    std::fs::write(
        arg::<String>(args, "--keys", String::new()),
        keys.join("\n"),
    )
    .context("writing the widget keys")?;

    let llm_url: String = arg(args, "--llm", String::new());
    // Every client is 127.0.0.1: lift the per-IP limits so the run measures the gateway.
    let mut config = ServerConfig {
        handshakes_per_minute: 10_000_000,
        http_requests_per_minute: 10_000_000,
        max_sockets: 100_000,
        max_sockets_per_ip: 100_000,
        max_open_tenants: max_open,
        ..ServerConfig::default()
    };
    config.transport.max_connections = 100_000;
    config.llm.base_url = Some(llm_url.clone());
    config.llm.model = "fake".into();
    let backend = OpenAiBackend::new(&llm_url, Some("sk-bench".into()), Duration::from_secs(2))?;
    let app = App::new(
        store,
        Llm::new(Arc::new(backend), config.llm.timeouts),
        config,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("ready {}", listener.local_addr()?);
    app::serve(listener, app, std::future::pending()).await?;
    Ok(())
}

/// Creates `count` tenants (32 at a time) and returns their widget keys.
async fn create_tenants(store: &Store, count: usize) -> Result<Vec<String>> {
    let origin = Origin::parse(ORIGIN)?;
    let settings = TenantSettings {
        messages_per_minute: 100_000,
        tenant_messages_per_minute: 10_000_000,
        daily_token_budget: 0,
        ..TenantSettings::default()
    };
    let created = futures_util::stream::iter(0..count)
        .map(|i| {
            let (store, origin, settings) = (store.clone(), origin.clone(), settings.clone());
            async move {
                let id = TenantId::parse(&format!("bench-{i:05}"))?;
                let created = store
                    .create_tenant(&id, "bench", &[origin], "bench")
                    .await?;
                store
                    .catalog
                    .call(move |c| tenants::update_settings(c, &id, "bench", &settings))
                    .await?;
                Ok::<_, anyhow::Error>(created.widget_key)
            }
        })
        .buffered(32)
        .collect::<Vec<_>>()
        .await;
    created.into_iter().collect()
}
