//! The cluster under test: `chatvault serve` nodes and HAProxy running `deploy/haproxy.cfg`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cli::{Cli, Server};
use crate::fake_llm::FakeLlm;

/// A `chatvault serve` process with its own data directory and master key.
pub struct Node {
    pub cli: Cli,
    pub server: Server,
}

impl Node {
    pub fn start(cli: Cli, cluster_secret: &str, llm: &FakeLlm) -> Self {
        let args = [
            "--trusted-proxy",
            "127.0.0.1/32",
            // Reconnects while a tenant is frozen all come from the balancer's address.
            "--handshakes-per-minute",
            "6000",
            "--llm-base-url",
            &llm.base_url,
        ];
        let server = Server::serve(&cli, &args, &[("CHATVAULT_CLUSTER_SECRET", cluster_secret)]);
        Self { cli, server }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}

/// HAProxy running `deploy/haproxy.cfg` in the foreground.
pub struct Balancer {
    child: Child,
    pub addr: String,
    pub socket: PathBuf,
    pub map: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Balancer {
    pub async fn start(nodes: &[&Node], map: &str) -> Self {
        let haproxy = which("haproxy").expect(
            "HAProxy is needed for the multi-node test: ./scripts/test installs Debian's haproxy",
        );
        let dir = tempfile::tempdir().unwrap();
        let (socket, map_path) = (
            dir.path().join("admin.sock"),
            dir.path().join("tenants.map"),
        );
        std::fs::write(&map_path, map).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
        let mut command = Command::new(haproxy);
        command
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("CHATVAULT_LB_BIND", &addr)
            .env("CHATVAULT_HAPROXY_SOCKET", &socket)
            .env("CHATVAULT_TENANT_MAP", &map_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (i, node) in nodes.iter().enumerate() {
            command.env(format!("CHATVAULT_NODE{}", i + 1), &node.server.addr);
        }
        let balancer = Self {
            child: command.spawn().unwrap(),
            addr,
            socket,
            map: map_path,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            let healthy = http
                .get(format!("http://{}/healthz", balancer.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy && balancer.socket.exists() {
                return balancer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("HAProxy did not come up on {}", balancer.addr);
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}
