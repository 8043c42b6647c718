//! A tenant in transit: `CVMOVE1\n`, the length of the sealed manifest (u32, big-endian), the
//! manifest sealed with the cluster's transfer key (the DEK, the catalog rows, the file's length
//! and SHA-256), then the tenant's SQLCipher file as it is on disk (already encrypted under the
//! DEK). Nothing in it is readable without the cluster secret, a changed bit anywhere is refused,
//! and the file part streams: neither end holds it in memory.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::ClusterSecret;
use crate::catalog::transfer::TenantRows;
use crate::crypto::DbKey;
use crate::domain::TenantId;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CVMOVE1\n";

/// A sealed manifest larger than this is refused before it is buffered.
const MAX_SEALED_MANIFEST: usize = 256 << 20;

/// What travels sealed ahead of the file.
pub struct Header {
    pub dek: DbKey,
    pub rows: TenantRows,
    pub file_len: u64,
    file_sha256: String,
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

/// The bytes that precede the file: magic, length, sealed manifest.
pub fn seal_header(
    secret: &ClusterSecret,
    tenant: &TenantId,
    dek: &DbKey,
    rows: &TenantRows,
    file: &FileDigest,
) -> Result<Vec<u8>> {
    let dek = Zeroizing::new(dek.to_hex());
    let manifest = Manifest {
        tenant: tenant.as_str(),
        dek: &dek,
        file_len: file.len,
        file_sha256: file.hex(),
        rows,
    };
    let plain = Zeroizing::new(
        serde_json::to_vec(&manifest)
            .map_err(|e| Error::Unavailable(format!("could not encode the bundle: {e}")))?,
    );
    let sealed = secret.seal(tenant, &plain);
    let sealed_len = u32::try_from(sealed.len())
        .ok()
        .filter(|&n| n as usize <= MAX_SEALED_MANIFEST)
        .ok_or_else(|| Error::TooLarge("the tenant's catalog rows exceed 256 MiB".into()))?;
    Ok([MAGIC.as_slice(), &sealed_len.to_be_bytes(), &sealed].concat())
}

/// Reads the header at the start of `bytes`, which must be for `tenant`. `Ok(None)`: not all of
/// it has arrived yet. Otherwise the header and how many bytes of `bytes` it took.
pub fn open_header(
    secret: &ClusterSecret,
    tenant: &TenantId,
    bytes: &[u8],
) -> Result<Option<(Header, usize)>> {
    let prefix = MAGIC.len().min(bytes.len());
    if bytes[..prefix] != MAGIC[..prefix] {
        return Err(bad("wrong magic"));
    }
    let Some(len) = bytes.get(MAGIC.len()..MAGIC.len() + 4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(len.try_into().map_err(|_| bad("truncated"))?) as usize;
    if len > MAX_SEALED_MANIFEST {
        return Err(bad("manifest too large"));
    }
    let start = MAGIC.len() + 4;
    let Some(sealed) = bytes.get(start..start + len) else {
        return Ok(None);
    };
    let plain = secret.open(tenant, sealed)?;
    let manifest: Manifest<TenantRows> =
        serde_json::from_slice(&plain).map_err(|_| bad("unreadable manifest"))?;
    if manifest.tenant != tenant.as_str() {
        return Err(bad("it is for another tenant"));
    }
    let dek = DbKey::from_hex(manifest.dek).ok_or_else(|| bad("malformed key"))?;
    let header = Header {
        dek,
        rows: manifest.rows,
        file_len: manifest.file_len,
        file_sha256: manifest.file_sha256,
    };
    Ok(Some((header, start + len)))
}

impl Header {
    /// Succeeds only if the file that followed is exactly the one the sender sealed.
    pub fn check(&self, file: &FileDigest) -> Result<()> {
        if file.len == self.file_len && file.hex() == self.file_sha256 {
            Ok(())
        } else {
            Err(bad("the tenant file was truncated or altered in transit"))
        }
    }
}

/// Length and SHA-256 of a file, fed in pieces.
#[derive(Default)]
pub struct FileDigest {
    len: u64,
    sha: Sha256,
}

impl FileDigest {
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        self.sha.update(chunk);
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hex(&self) -> String {
        hex::encode(self.sha.clone().finalize())
    }
}

fn bad(why: &str) -> Error {
    Error::invalid("invalid_bundle", format!("not a tenant bundle: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = b"SQLCipher pages, already encrypted under the DEK";

    fn sample() -> (ClusterSecret, TenantId, DbKey, Vec<u8>) {
        let secret = ClusterSecret::from_bytes(&[7; 32]);
        let tenant = TenantId::parse("acme").unwrap();
        let dek = DbKey::generate();
        let mut digest = FileDigest::default();
        digest.update(FILE);
        let rows = TenantRows { tables: Vec::new() };
        let header = seal_header(&secret, &tenant, &dek, &rows, &digest).unwrap();
        (secret, tenant, dek, [header, FILE.to_vec()].concat())
    }

    /// What a receiver does: the header once it has arrived whole, then the file checked.
    fn receive(secret: &ClusterSecret, tenant: &TenantId, bytes: &[u8]) -> Result<Header> {
        let (header, used) = open_header(secret, tenant, bytes)?.ok_or_else(|| bad("truncated"))?;
        let mut digest = FileDigest::default();
        digest.update(&bytes[used..]);
        header.check(&digest)?;
        Ok(header)
    }

    #[test]
    fn a_bundle_round_trips_in_pieces_and_hides_its_key() {
        let (secret, tenant, dek, bytes) = sample();
        let dek_hex = dek.to_hex();
        assert!(
            !bytes
                .windows(dek_hex.len())
                .any(|w| w == dek_hex.as_bytes())
        );
        for cut in [0, 3, 8, 11, 40] {
            assert!(
                open_header(&secret, &tenant, &bytes[..cut])
                    .unwrap()
                    .is_none(),
                "{cut}"
            );
        }
        let header = receive(&secret, &tenant, &bytes).unwrap();
        assert!(header.dek == dek);
        assert_eq!(header.file_len, FILE.len() as u64);
    }

    #[test]
    fn any_change_in_transit_is_refused() {
        let (secret, tenant, _, bytes) = sample();
        for at in [0, 10, 40, bytes.len() - 1] {
            let mut tampered = bytes.clone();
            tampered[at] ^= 1;
            assert!(receive(&secret, &tenant, &tampered).is_err(), "byte {at}");
        }
        for cut in [0, 8, 12, bytes.len() - 1] {
            assert!(
                receive(&secret, &tenant, &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let other = TenantId::parse("other").unwrap();
        assert!(receive(&secret, &other, &bytes).is_err());
        let stranger = ClusterSecret::from_bytes(&[8; 32]);
        assert!(receive(&stranger, &tenant, &bytes).is_err());
    }
}
