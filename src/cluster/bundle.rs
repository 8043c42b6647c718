//! A tenant in transit: `CVMOVE1\n`, the length of the sealed manifest (u32, big-endian), the
//! manifest sealed with the cluster's transfer key (the DEK, the catalog rows, the file's length
//! and SHA-256), then the tenant's SQLCipher file as it is on disk (already encrypted under the
//! DEK). Nothing in it is readable without the cluster secret, and a changed bit anywhere is
//! refused.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::ClusterSecret;
use crate::catalog::transfer::TenantRows;
use crate::crypto::DbKey;
use crate::domain::TenantId;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CVMOVE1\n";

/// One tenant, whole.
pub struct Bundle {
    pub tenant: TenantId,
    pub dek: DbKey,
    pub rows: TenantRows,
    /// The tenant's file: a self-contained SQLCipher database (no WAL) keyed with `dek`.
    pub file: Vec<u8>,
}

/// Sealed as JSON; `R` is `&TenantRows` going out and `TenantRows` coming in.
#[derive(Serialize, Deserialize)]
struct Manifest<'a, R> {
    tenant: &'a str,
    dek: &'a str,
    file_len: u64,
    file_sha256: String,
    rows: R,
}

impl Bundle {
    pub fn encode(&self, secret: &ClusterSecret) -> Result<Vec<u8>> {
        let dek = Zeroizing::new(self.dek.to_hex());
        let manifest = Manifest {
            tenant: self.tenant.as_str(),
            dek: &dek,
            file_len: self.file.len() as u64,
            file_sha256: hex::encode(Sha256::digest(&self.file)),
            rows: &self.rows,
        };
        let plain = Zeroizing::new(serde_json::to_vec(&manifest).map_err(internal)?);
        let sealed = secret.seal(&self.tenant, &plain);
        let sealed_len = u32::try_from(sealed.len())
            .map_err(|_| Error::TooLarge("the tenant's catalog rows exceed 4 GiB".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + sealed.len() + self.file.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&sealed_len.to_be_bytes());
        out.extend_from_slice(&sealed);
        out.extend_from_slice(&self.file);
        Ok(out)
    }

    /// Opens a bundle that must be for `tenant`.
    pub fn decode(secret: &ClusterSecret, tenant: &TenantId, bytes: &[u8]) -> Result<Self> {
        let bad =
            |why: &str| Error::invalid("invalid_bundle", format!("not a tenant bundle: {why}"));
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("wrong magic"))?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| bad("truncated"))?) as usize;
        let (sealed, file) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let plain = secret.open(tenant, sealed)?;
        let manifest: Manifest<TenantRows> =
            serde_json::from_slice(&plain).map_err(|_| bad("unreadable manifest"))?;
        if manifest.tenant != tenant.as_str() {
            return Err(bad("it is for another tenant"));
        }
        let dek = DbKey::from_hex(manifest.dek).ok_or_else(|| bad("malformed key"))?;
        let intact = manifest.file_len == file.len() as u64
            && manifest.file_sha256 == hex::encode(Sha256::digest(file));
        if !intact {
            return Err(bad("the tenant file was truncated or altered in transit"));
        }
        Ok(Self {
            tenant: tenant.clone(),
            dek,
            rows: manifest.rows,
            file: file.to_vec(),
        })
    }
}

fn internal(e: serde_json::Error) -> Error {
    Error::Unavailable(format!("could not encode the bundle: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (ClusterSecret, Bundle) {
        let secret = ClusterSecret::from_bytes(&[7; 32]);
        let bundle = Bundle {
            tenant: TenantId::parse("acme").unwrap(),
            dek: DbKey::generate(),
            rows: TenantRows { tables: Vec::new() },
            file: b"SQLCipher pages".repeat(100),
        };
        (secret, bundle)
    }

    #[test]
    fn a_bundle_round_trips_and_hides_its_key() {
        let (secret, bundle) = sample();
        let bytes = bundle.encode(&secret).unwrap();
        let dek_hex = bundle.dek.to_hex();
        assert!(
            !bytes
                .windows(dek_hex.len())
                .any(|w| w == dek_hex.as_bytes())
        );
        let back = Bundle::decode(&secret, &bundle.tenant, &bytes).unwrap();
        assert!(back.dek == bundle.dek);
        assert_eq!(back.file, bundle.file);
    }

    #[test]
    fn any_change_in_transit_is_refused() {
        let (secret, bundle) = sample();
        let bytes = bundle.encode(&secret).unwrap();
        for at in [0, 10, 40, bytes.len() - 1] {
            let mut tampered = bytes.clone();
            tampered[at] ^= 1;
            assert!(
                Bundle::decode(&secret, &bundle.tenant, &tampered).is_err(),
                "byte {at}"
            );
        }
        for cut in [0, 8, 12, bytes.len() - 1] {
            assert!(
                Bundle::decode(&secret, &bundle.tenant, &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let other = TenantId::parse("other").unwrap();
        assert!(Bundle::decode(&secret, &other, &bytes).is_err());
    }
}
