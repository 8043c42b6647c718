//! `spawn_app()`: the real server on 127.0.0.1:0 with a temp data directory and the fake LLM,
//! plus a WebSocket client that speaks the widget protocol, and captured logs.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chatvault::app::{self, App};
use chatvault::config::ServerConfig;
use chatvault::crypto::MasterKey;
use chatvault::datadir::DataDir;
use chatvault::domain::{Origin, TenantId};
use chatvault::llm::Llm;
use chatvault::llm::openai::OpenAiBackend;
use chatvault::store::{CreatedTenant, Store};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::fake_llm::FakeLlm;

pub const ORIGIN: &str = "https://acme.example";

/// A running server and what a test needs to reach it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub master_key: MasterKey,
    pub store: Store,
    pub acme: CreatedTenant,
    pub llm: FakeLlm,
    _tmp: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server with a tweaked configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("tenants");
    spawn_app_at(tmp, data_dir, tweak).await
}

/// Starts the server on a data directory the caller prepared (e.g. a small tmpfs).
pub async fn spawn_app_at(
    tmp: tempfile::TempDir,
    data_dir: PathBuf,
    tweak: impl FnOnce(&mut ServerConfig),
) -> TestApp {
    capture_logs();
    let master_key = MasterKey::generate();
    let store = Store::open(DataDir::open(&data_dir).unwrap(), &master_key, 16).unwrap();
    let acme = create_tenant(&store, "acme", ORIGIN).await;
    let llm = FakeLlm::start().await;
    let mut config = ServerConfig {
        data_dir: data_dir.clone(),
        handshakes_per_minute: 10_000,
        ..ServerConfig::default()
    };
    config.llm.base_url = Some(llm.base_url.clone());
    config.llm.model = "fake-model".into();
    config.llm.timeouts.first_token = Duration::from_secs(2);
    config.llm.timeouts.total = Duration::from_secs(4);
    tweak(&mut config);
    let backend = OpenAiBackend::new(
        &llm.base_url,
        Some("sk-test-key".into()),
        Duration::from_secs(2),
    )
    .unwrap();
    let app = App::new(
        store.clone(),
        Llm::new(Arc::new(backend), config.llm.timeouts)
            .with_breaker(config.llm.breaker_threshold, config.llm.breaker_cooldown),
        config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app::serve(listener, app, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        addr,
        data_dir,
        master_key,
        store,
        acme,
        llm,
        _tmp: tmp,
        stop: Some(stop),
        server: Some(server),
    }
}

pub async fn create_tenant(store: &Store, id: &str, origin: &str) -> CreatedTenant {
    let id = TenantId::parse(id).unwrap();
    store
        .create_tenant(&id, id.as_str(), &[Origin::parse(origin).unwrap()], "test")
        .await
        .unwrap()
}

impl TestApp {
    pub fn ws_url(&self, key: &str) -> String {
        format!("ws://{}/v1/widget/ws?key={key}", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A widget socket for the acme tenant from its allowed origin.
    pub async fn widget(&self) -> Widget {
        self.widget_for(&self.acme.widget_key.clone(), Some(ORIGIN))
            .await
            .expect("handshake succeeds")
    }

    /// Opens a socket; on refusal returns the HTTP status.
    pub async fn widget_for(&self, key: &str, origin: Option<&str>) -> Result<Widget, u16> {
        let mut request = self.ws_url(key).into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => {
                let mut widget = Widget { ws };
                let hello = widget.next().await;
                assert_eq!(hello["type"], "hello", "{hello}");
                Ok(widget)
            }
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("unexpected handshake failure: {e}"),
        }
    }

    /// Stops the server and waits for it (sessions closed, files released).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
    }

    /// Every byte of every file under the data directory, concatenated.
    pub fn raw_bytes_of_data_dir(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in walk(&self.data_dir) {
            bytes.extend(std::fs::read(entry).unwrap_or_default());
        }
        bytes
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

/// A widget-protocol client over a real WebSocket.
pub struct Widget {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Widget {
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    pub async fn submit(&mut self, id: &str, text: &str) {
        self.send(serde_json::json!({"type": "submit", "id": id, "text": text}))
            .await;
    }

    /// The next JSON frame (pings skipped); panics after 10 s.
    pub async fn next(&mut self) -> Value {
        match self.next_message().await {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    pub async fn next_message(&mut self) -> Message {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")
                .expect("the socket is open")
                .expect("a valid frame");
            if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
                return message;
            }
        }
    }

    /// Frames up to and including the first of type `kind`.
    pub async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let done = frame["type"] == kind;
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// Submits and reads through `done` or `error`; returns every frame.
    pub async fn exchange(&mut self, id: &str, text: &str) -> Vec<Value> {
        self.submit(id, text).await;
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let last = frame["type"] == "done" || frame["type"] == "error";
            frames.push(frame);
            if last {
                return frames;
            }
        }
    }
}

/// `GET url` with an API key: the JSON body (`Null` when the body is not JSON).
pub async fn get_json(http: &reqwest::Client, url: &str, api_key: &str) -> Value {
    http.get(url)
        .bearer_auth(api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// The visitor texts of a conversation on the server at `base` (`http://…`), in order; empty
/// when the conversation is not there.
pub async fn visitor_texts(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    id: &str,
) -> Vec<String> {
    let body = get_json(http, &format!("{base}/v1/conversations/{id}"), api_key).await;
    body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["role"] == "visitor")
                .map(|m| m["text"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The concatenated `delta` texts of a frame list.
pub fn reply_text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["type"] == "delta")
        .map(|f| f["text"].as_str().unwrap())
        .collect()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// Everything the server logged in this test binary so far.
pub fn captured_logs() -> String {
    LOGS.get()
        .map(|l| String::from_utf8_lossy(&l.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let make_writer = move || LogWriter(writer.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter("chatvault=trace,info")
            .with_writer(make_writer)
            .with_ansi(false)
            .try_init();
        buffer
    });
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
