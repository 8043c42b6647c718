//! The accept loop: HTTP/1.1 with a header-read deadline (slowloris), bounded header buffers, a
//! cap on concurrent connections, and graceful shutdown that stops accepting and lets requests
//! in flight finish, over plain TCP or TLS. Upgraded widget sockets are tracked by the app, not here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits on the transport, before any route runs.
#[derive(Clone, Copy, Debug)]
pub struct TransportLimits {
    /// Open TCP connections at once (plain HTTP and upgraded sockets alike).
    pub max_connections: usize,
    /// A client must finish sending its request headers within this time.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers) accepted.
    pub max_header_bytes: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_connections: 25_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled; over TLS when `tls` is given (the
/// handshake runs in the connection's task, bounded by the header-read deadline).
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: TransportLimits,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(client_ip = %peer.ip(), "connection refused: server at its connection limit");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => serve_connection(stream, peer, router, limits, stop).await,
                Some(tls) => match tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, peer, router, limits, stop).await,
                    Ok(Err(e)) => tracing::debug!(client_ip = %peer.ip(), error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(client_ip = %peer.ip(), "TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(Duration::from_secs(10), connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP requests were still running at shutdown");
    }
}

/// One HTTP/1.1 connection (plain or TLS) until it ends or the server stops.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    limits: TransportLimits,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router.map_request(
        move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            request
        },
    ));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stop.cancelled() => {
            // Finish the request in flight, then close; idle keep-alives close now.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
