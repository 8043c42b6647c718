//! The master key: 64 hex digits from `CHATVAULT_MASTER_KEY` or a 0600 key file. It wraps every
//! tenant DEK and keys the catalog and keyring; it is never logged or written by the server.

use std::path::{Path, PathBuf};

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::random_bytes;
use crate::error::{Error, Result};

/// The operator's master key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Where the master key is read from.
#[derive(Clone, Debug)]
pub enum MasterKeySource {
    /// 64 hex digits held in an environment variable (named, the value is not kept here).
    Env(String),
    /// A file holding 64 hex digits, mode 0600 or stricter.
    File(PathBuf),
}

impl MasterKey {
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(raw: &str) -> Result<Self> {
        parse_hex("master key", raw).map(Self)
    }

    /// Loads the key from its source.
    pub fn load(source: &MasterKeySource) -> Result<Self> {
        read_secret(source, "master key", missing_key).map(Self)
    }
}

/// Reads a 256-bit secret, 64 hex digits, from an environment variable or a file of mode 0600
/// or stricter. `what` names the secret in errors; `missing` explains how to provide it.
pub(crate) fn read_secret(
    source: &MasterKeySource,
    what: &str,
    missing: impl FnOnce() -> Error,
) -> Result<[u8; 32]> {
    let mut contents = match source {
        MasterKeySource::Env(var) => std::env::var(var).map_err(|_| missing())?,
        MasterKeySource::File(path) => read_private_file(path, what)?,
    };
    let secret = parse_hex(what, &contents);
    contents.zeroize();
    secret
}

fn read_private_file(path: &Path, what: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = |e: std::io::Error| {
        Error::Config(format!("cannot read {what} file {}: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::Config(format!(
            "{what} file {} must be mode 0600 or stricter (run: chmod 600 {})",
            path.display(),
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

fn parse_hex(what: &str, raw: &str) -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    let trimmed = raw.trim();
    if trimmed.len() != 64 || hex::decode_to_slice(trimmed, &mut bytes).is_err() {
        return Err(Error::Config(format!(
            "the {what} must be exactly 64 hex characters (make one with `chatvault key generate`)"
        )));
    }
    Ok(bytes)
}

fn missing_key() -> Error {
    Error::Config(
        "no master key: set CHATVAULT_MASTER_KEY or pass --master-key-file PATH \
         (make one with `chatvault key generate`)"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn malformed_keys_are_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            assert!(MasterKey::from_hex(bad).is_err(), "{bad:?}");
        }
        assert!(MasterKey::from_hex(&format!("{}\n", "a".repeat(64))).is_ok());
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, MasterKey::generate().to_hex()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load(&MasterKeySource::File(path.clone())).unwrap_err();
        assert!(err.to_string().contains("0600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::load(&MasterKeySource::File(path)).is_ok());
    }
}
