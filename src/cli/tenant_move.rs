//! `chatvault tenant move ID --from URL --to URL`: carries one tenant between two running nodes
//! through their `/ops/` routes (see [`crate::cluster::moves`]), and repoints HAProxy's tenant
//! map between the import and the release. Any failure before the release calls the move off
//! and leaves the tenant where it was.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Deserialize;

use super::Output;
use crate::cluster::ClusterSecret;
use crate::cluster::haproxy::TenantMap;
use crate::domain::TenantId;
use crate::error::{Error, Result};

#[derive(Args, Debug)]
pub struct MoveArgs {
    pub id: String,
    /// The node that holds the tenant now, e.g. http://10.0.0.1:8080 (its own address, not the
    /// load balancer's).
    #[arg(long)]
    pub from: url::Url,
    /// The node that will hold it.
    #[arg(long)]
    pub to: url::Url,
    /// File holding the cluster secret (mode 0600); otherwise CHATVAULT_CLUSTER_SECRET is read.
    #[arg(long, env = "CHATVAULT_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// HAProxy's runtime API socket (`stats socket … level admin`); with --haproxy-map, the
    /// tenant is routed to --backend once the new node has it.
    #[arg(long, requires_all = ["haproxy_map", "backend"])]
    pub haproxy_socket: Option<PathBuf>,
    /// The tenant map file, exactly as haproxy.cfg names it.
    #[arg(long, requires = "haproxy_socket")]
    pub haproxy_map: Option<PathBuf>,
    /// The HAProxy backend that reaches the --to node.
    #[arg(long, requires = "haproxy_socket")]
    pub backend: Option<String>,
    /// Only finish a move whose last step failed: check that --to holds the tenant, then
    /// destroy the old copy on --from.
    #[arg(long, conflicts_with = "haproxy_socket")]
    pub finish: bool,
}

/// One node's `/ops/` routes.
struct Node<'a> {
    base: &'a url::Url,
    http: &'a reqwest::Client,
    secret: &'a ClusterSecret,
}

#[derive(Deserialize)]
struct Imported {
    conversations: i64,
    messages: i64,
    bytes: u64,
}

pub async fn run(out: &Output, args: MoveArgs) -> Result<()> {
    let tenant = TenantId::parse(&args.id)?;
    if args.from == args.to {
        return Err(Error::invalid(
            "invalid_move",
            "--from and --to name the same node",
        ));
    }
    let secret = ClusterSecret::require(args.cluster_secret_file.as_deref())?;
    let http = reqwest::Client::builder()
        // A node answers itself or not at all: a redirect would carry the bundle elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        // No total timeout: a large tenant streams for as long as it takes, but a stalled one fails.
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| Error::Unavailable(format!("cannot start an HTTP client: {e}")))?;
    let from = Node {
        base: &args.from,
        http: &http,
        secret: &secret,
    };
    let to = Node {
        base: &args.to,
        http: &http,
        secret: &secret,
    };
    let map = args.haproxy_socket.clone().map(|socket| TenantMap {
        socket,
        map: args.haproxy_map.clone().unwrap_or_default(),
    });
    let progress = |line: String| {
        if !out.json {
            eprintln!("{line}");
        }
    };

    if args.finish {
        return finish(out, &tenant, &from, &to).await;
    }
    let started = Instant::now();
    progress(format!("freezing {tenant} on {}", args.from));
    if let Err(e) = from.post(&tenant, "freeze").await {
        from.call_off(&tenant).await;
        return Err(e);
    }
    let moved = async {
        let export = from.post(&tenant, "export").await?;
        let size = export.content_length().unwrap_or_default();
        progress(format!(
            "streaming {size} bytes from {} to {}",
            args.from, args.to
        ));
        // The bundle flows straight from one node to the other; this process holds none of it.
        let bundle = reqwest::Body::wrap_stream(export.bytes_stream());
        let imported: Imported = to
            .post_body(&tenant, "import", bundle)
            .await?
            .json()
            .await
            .map_err(transport(to.base))?;
        if let (Some(map), Some(backend)) = (&map, &args.backend) {
            progress(format!("routing {tenant} to HAProxy backend {backend}"));
            if let Err(e) = map.route(&tenant, backend).await {
                // The new copy goes; the old one takes its traffic back.
                let _ = to.post(&tenant, "freeze").await;
                let _ = to.post(&tenant, "release").await;
                return Err(e);
            }
        }
        Ok(imported)
    }
    .await;
    // From here the new node serves the tenant: the pause visitors saw ends now.
    let paused_ms = started.elapsed().as_millis() as u64;
    let imported = match moved {
        Ok(imported) => imported,
        Err(e) => {
            from.call_off(&tenant).await;
            return Err(e);
        }
    };
    progress(format!("releasing {tenant} on {}", args.from));
    from.post(&tenant, "release").await.map_err(|e| {
        Error::Unavailable(format!(
            "{tenant} now lives on {} but its old copy on {} was not destroyed ({e}); finish \
             with `chatvault tenant move {tenant} --from {} --to {} --finish`",
            args.to, args.from, args.from, args.to
        ))
    })?;
    let total_ms = started.elapsed().as_millis() as u64;
    out.emit(
        serde_json::json!({
            "tenant": tenant.as_str(),
            "from": args.from.as_str(),
            "to": args.to.as_str(),
            "conversations": imported.conversations,
            "messages": imported.messages,
            "bytes": imported.bytes,
            "paused_ms": paused_ms,
            "total_ms": total_ms,
        }),
        || {
            format!(
                "moved {tenant} to {}: {} conversations, {} messages, {} bytes; the tenant paused \
                 for {paused_ms} ms (whole move {total_ms} ms)",
                args.to, imported.conversations, imported.messages, imported.bytes
            )
        },
    );
    Ok(())
}

/// The last step alone, for a move whose release failed.
async fn finish(out: &Output, tenant: &TenantId, from: &Node<'_>, to: &Node<'_>) -> Result<()> {
    let held: Imported = to
        .send(to.http.get(to.url(tenant, "")))
        .await?
        .json()
        .await
        .map_err(transport(to.base))?;
    from.post(tenant, "freeze").await?;
    from.post(tenant, "release").await?;
    out.emit(
        serde_json::json!({
            "tenant": tenant.as_str(),
            "from": from.base.as_str(),
            "to": to.base.as_str(),
            "conversations": held.conversations,
            "messages": held.messages,
            "bytes": held.bytes,
            "finished": true,
        }),
        || {
            format!(
                "{tenant} lives on {} only; its old copy on {} is destroyed",
                to.base, from.base
            )
        },
    );
    Ok(())
}

impl Node<'_> {
    fn url(&self, tenant: &TenantId, step: &str) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        format!("{base}/ops/tenants/{tenant}/{step}")
            .trim_end_matches('/')
            .to_owned()
    }

    async fn post(&self, tenant: &TenantId, step: &str) -> Result<reqwest::Response> {
        self.send(self.http.post(self.url(tenant, step))).await
    }

    async fn post_body(
        &self,
        tenant: &TenantId,
        step: &str,
        body: reqwest::Body,
    ) -> Result<reqwest::Response> {
        let request = self
            .http
            .post(self.url(tenant, step))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .bearer_auth(self.secret.bearer())
            .send()
            .await
            .map_err(transport(self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no details")
            .to_owned();
        let what = format!("{} answered {status}: {message}", self.base);
        Err(match status.as_u16() {
            401 | 403 => Error::Config(format!(
                "{what} (is the cluster secret the same on every node?)"
            )),
            404 => Error::NotFound(what),
            409 => Error::Conflict(what),
            _ => Error::Unavailable(what),
        })
    }

    /// Best effort: the source takes the tenant's traffic again.
    async fn call_off(&self, tenant: &TenantId) {
        if let Err(e) = self.post(tenant, "thaw").await {
            eprintln!("could not thaw {tenant} on {}: {e}", self.base);
        }
    }
}

fn transport(base: &url::Url) -> impl Fn(reqwest::Error) -> Error + '_ {
    move |e| Error::Unavailable(format!("cannot reach {base}: {e}"))
}
