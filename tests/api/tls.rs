//! Built-in TLS: HTTPS with a self-signed certificate made here, HSTS, and a certificate swap by
//! SIGHUP that new handshakes see while an open widget socket keeps working.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatvault::config::TlsFiles;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{ORIGIN, spawn_app_with};

/// A fresh self-signed certificate for `localhost`, written to `dir`; returns its DER.
fn make_certificate(dir: &Path) -> (CertificateDer<'static>, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = made.cert.pem();
    // Write then rename, as certificate tooling does, so a reload never sees half a file.
    std::fs::write(dir.join("cert.pem.new"), &pem).unwrap();
    std::fs::write(dir.join("key.pem.new"), made.signing_key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
    (made.cert.der().clone(), pem)
}

/// A TLS connection to `addr` that trusts only `root`.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn https_works_and_a_sighup_swaps_the_certificate_without_dropping_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_pem) = make_certificate(dir.path());
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    let app = spawn_app_with(|c| c.tls = Some(files)).await;

    // A plain HTTPS client that trusts the certificate.
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(first_pem.as_bytes()).unwrap()])
        .resolve("localhost", app.addr)
        .build()
        .unwrap();
    let response = client
        .get(format!("https://localhost:{}/healthz", app.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );

    // A widget socket over TLS, used before and after the swap.
    let stream = connect(app.addr, &first).await.unwrap();
    let mut request = format!(
        "wss://localhost:{}/v1/widget/ws?key={}",
        app.addr.port(),
        app.acme.widget_key
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "hello");
    assert_eq!(exchange(&mut ws, "before").await, "done");

    let (second, _) = make_certificate(dir.path());
    std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    let mut swapped = false;
    for _ in 0..100 {
        if connect(app.addr, &second).await.is_ok() {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "new handshakes present the new certificate");
    assert!(
        connect(app.addr, &first).await.is_err(),
        "the old certificate is no longer presented"
    );

    assert_eq!(
        exchange(&mut ws, "after").await,
        "done",
        "the socket opened before the swap still works"
    );
    let _ = ws.close(None).await;
    app.stop().await;
}

type Socket = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

async fn next(ws: &mut Socket) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

/// Submits and returns the type of the frame that ends the exchange.
async fn exchange(ws: &mut Socket, id: &str) -> String {
    let submit = serde_json::json!({"type": "submit", "id": id, "text": "hello over TLS"});
    ws.send(Message::Text(submit.to_string().into()))
        .await
        .unwrap();
    loop {
        let frame = next(ws).await;
        if frame["type"] == "done" || frame["type"] == "error" {
            return frame["type"].as_str().unwrap().to_owned();
        }
    }
}

#[test]
fn config_check_refuses_a_key_that_does_not_fit_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), one.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        other.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not pem").unwrap();
    let key = crate::config::master_key();
    for (cert, expected) in [
        ("cert.pem", "does not fit the certificate"),
        ("junk.pem", "holds no certificate"),
    ] {
        let out = std::process::Command::new(crate::cli::bin())
            .args(["config", "check", "--json", "--tls-cert"])
            .arg(dir.path().join(cert))
            .arg("--tls-key")
            .arg(dir.path().join("key.pem"))
            .env("CHATVAULT_MASTER_KEY", &key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            report["problems"][0].as_str().unwrap().contains(expected),
            "{report}"
        );
    }
}
