//! Keeping HAProxy's tenant map in step with where tenants live. The runtime API (a stats socket
//! at `level admin`) changes the live map without a reload; the map file is rewritten too, so a
//! reload or restart keeps the change.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::domain::TenantId;
use crate::error::{Error, Result};

/// The HAProxy map that routes tenants, and how to reach the running HAProxy.
#[derive(Clone, Debug)]
pub struct TenantMap {
    /// The stats socket (`stats socket PATH level admin` in haproxy.cfg).
    pub socket: PathBuf,
    /// The map file exactly as haproxy.cfg names it.
    pub map: PathBuf,
}

impl TenantMap {
    /// Routes `tenant` to `backend`, live and on disk.
    pub async fn route(&self, tenant: &TenantId, backend: &str) -> Result<()> {
        if !backend
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            || backend.is_empty()
        {
            return Err(Error::invalid(
                "invalid_backend",
                "backend names are letters, digits and - _ . :",
            ));
        }
        let map = self.map.display();
        let set = self
            .command(&format!("set map {map} {tenant} {backend}"))
            .await?;
        if !set.trim().is_empty() {
            // Not in the map yet.
            let added = self
                .command(&format!("add map {map} {tenant} {backend}"))
                .await?;
            if !added.trim().is_empty() {
                return Err(Error::Unavailable(format!(
                    "HAProxy refused to route {tenant} to {backend}: {}",
                    added.trim()
                )));
            }
        }
        rewrite_map_file(&self.map, tenant, backend)
    }

    /// Sends one runtime API command and returns HAProxy's answer.
    async fn command(&self, line: &str) -> Result<String> {
        let unreachable = |e: std::io::Error| {
            Error::Unavailable(format!(
                "cannot reach HAProxy's runtime API at {}: {e}",
                self.socket.display()
            ))
        };
        let mut stream = UnixStream::connect(&self.socket)
            .await
            .map_err(unreachable)?;
        stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(unreachable)?;
        let mut reply = String::new();
        stream
            .read_to_string(&mut reply)
            .await
            .map_err(unreachable)?;
        Ok(reply)
    }
}

/// Replaces (or appends) the tenant's line in the map file, atomically.
fn rewrite_map_file(path: &Path, tenant: &TenantId, backend: &str) -> Result<()> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut lines: Vec<String> = current
        .lines()
        .filter(|line| line.split_whitespace().next() != Some(tenant.as_str()))
        .map(str::to_owned)
        .collect();
    lines.push(format!("{tenant} {backend}"));
    let staged = path.with_extension("map.new");
    std::fs::write(&staged, lines.join("\n") + "\n")?;
    std::fs::rename(&staged, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_file_keeps_one_line_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.map");
        std::fs::write(&path, "# tenant backend\nacme node1\nacme-shop node2\n").unwrap();
        let acme = TenantId::parse("acme").unwrap();
        rewrite_map_file(&path, &acme, "node3").unwrap();
        rewrite_map_file(&path, &TenantId::parse("new").unwrap(), "node1").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# tenant backend\nacme-shop node2\nacme node3\nnew node1\n"
        );
    }
}
