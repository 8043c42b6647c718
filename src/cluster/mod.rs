//! Running more than one node: tenants are independent files, so a cluster is a set of nodes
//! that each hold some tenants, a load balancer that routes every request by the tenant named in
//! its credential (see `deploy/haproxy.cfg`), and `chatvault tenant move`, which carries one
//! tenant from a node to another without losing a message.
//!
//! Nodes trust each other through one shared cluster secret (64 hex, like the master key). From
//! it come the bearer token of the node-to-node routes under `/ops/` and the key that seals a
//! tenant's bundle (its DEK and catalog rows) while it travels. Without a secret those routes do
//! not exist.

pub mod bundle;
mod files;
pub mod gates;
pub mod haproxy;
pub mod moves;

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::{self, MasterKeySource};
use crate::domain::TenantId;
use crate::error::{Error, Result};

/// The environment variable holding the cluster secret when no file is named.
pub const SECRET_ENV: &str = "CHATVAULT_CLUSTER_SECRET";

/// What the shared cluster secret gives a node: the ops bearer token and the bundle key.
pub struct ClusterSecret {
    token: Zeroizing<String>,
    token_hash: [u8; 32],
    transfer_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

impl ClusterSecret {
    /// The secret from `file` (mode 0600) if given, else from `CHATVAULT_CLUSTER_SECRET`;
    /// `None` when neither is set (a single node).
    pub fn load(file: Option<&Path>) -> Result<Option<Self>> {
        let source = match file {
            Some(path) => MasterKeySource::File(path.to_path_buf()),
            None if std::env::var_os(SECRET_ENV).is_some() => {
                MasterKeySource::Env(SECRET_ENV.into())
            }
            None => return Ok(None),
        };
        let missing = || Error::Config(format!("{SECRET_ENV} is not valid UTF-8"));
        let secret = Zeroizing::new(crypto::read_secret(&source, "cluster secret", missing)?);
        Ok(Some(Self::from_bytes(&secret)))
    }

    /// Like [`load`](Self::load), but a missing secret is an error naming how to set one.
    pub fn require(file: Option<&Path>) -> Result<Self> {
        Self::load(file)?.ok_or_else(|| {
            Error::Config(format!(
                "no cluster secret: set {SECRET_ENV} or pass --cluster-secret-file PATH (the \
                 same 64 hex on every node; make one with `chatvault key generate`)"
            ))
        })
    }

    /// From the raw 256-bit secret.
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        let token = Zeroizing::new(hex::encode(crypto::derive(
            secret,
            b"chatvault/v1/ops-token",
        )));
        Self {
            token_hash: Sha256::digest(token.as_bytes()).into(),
            token,
            transfer_key: Zeroizing::new(crypto::derive(secret, b"chatvault/v1/tenant-move")),
        }
    }

    /// What a node-to-node request sends as `Authorization: Bearer …`.
    pub fn bearer(&self) -> &str {
        &self.token
    }

    /// Constant-time check of a presented bearer token.
    pub fn accepts(&self, presented: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        hash.ct_eq(&self.token_hash).into()
    }

    /// Seals `plain` for travel, bound to the tenant it belongs to.
    fn seal(&self, tenant: &TenantId, plain: &[u8]) -> Vec<u8> {
        crypto::seal(&self.transfer_key, &aad(tenant), plain)
    }

    fn open(&self, tenant: &TenantId, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        crypto::open(&self.transfer_key, &aad(tenant), sealed)
            .map(Zeroizing::new)
            .ok_or_else(|| {
                Error::Crypto(format!(
                    "the bundle of tenant {tenant} does not open with this node's cluster secret"
                ))
            })
    }
}

fn aad(tenant: &TenantId) -> Vec<u8> {
    [
        b"chatvault tenant move v1:".as_slice(),
        tenant.as_str().as_bytes(),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_seals_depend_on_the_secret_and_the_tenant() {
        let (a, b) = (
            ClusterSecret::from_bytes(&[1; 32]),
            ClusterSecret::from_bytes(&[2; 32]),
        );
        assert!(a.accepts(a.bearer()));
        assert!(!a.accepts(b.bearer()));
        assert!(!a.accepts(""));
        let (acme, other) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("other").unwrap(),
        );
        let sealed = a.seal(&acme, b"dek and rows");
        assert_eq!(a.open(&acme, &sealed).unwrap().as_slice(), b"dek and rows");
        assert!(a.open(&other, &sealed).is_err(), "bound to its tenant");
        assert!(b.open(&acme, &sealed).is_err(), "bound to the secret");
    }
}
