//! Keys and the few primitives built on them: the master key, per-tenant data keys (DEKs), their
//! AES-256-GCM wrapping, HKDF-derived database keys, random tokens and token hashing.
//! All primitives come from RustCrypto crates; nothing here is hand-rolled.

mod master;

pub(crate) use master::read_secret;
pub use master::{MasterKey, MasterKeySource};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::domain::TenantId;
use crate::error::{Error, Result};

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the OS random number generator failed");
    out
}

/// A 256-bit SQLCipher key: a tenant's DEK, or a key derived for the catalog or keyring.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DbKey([u8; 32]);

impl DbKey {
    /// A fresh tenant DEK from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_hex(hex_key: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The key as 64 lowercase hex digits (what `tenant export-key` prints).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The SQLCipher statement that applies this key raw, skipping the passphrase KDF.
    pub fn pragma_statement(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", hex::encode(self.0)))
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(<redacted>)")
    }
}

/// What a derived database key is for; each purpose has its own HKDF info label.
#[derive(Clone, Copy, Debug)]
pub enum KeyPurpose {
    Catalog,
    Keyring,
}

impl KeyPurpose {
    fn info(self) -> &'static [u8] {
        match self {
            KeyPurpose::Catalog => b"chatvault/v1/catalog.db",
            KeyPurpose::Keyring => b"chatvault/v1/keyring.db",
        }
    }
}

/// HKDF-SHA256 of the master key with the purpose's own info label.
pub fn derive_db_key(master: &MasterKey, purpose: KeyPurpose) -> DbKey {
    DbKey(derive(master.expose(), purpose.info()))
}

/// HKDF-SHA256 (salt "chatvault") of `secret` for the purpose named by `info`.
pub(crate) fn derive(secret: &[u8; 32], info: &[u8]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(b"chatvault"), secret);
    let mut out = [0u8; 32];
    hk.expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// `nonce || AES-256-GCM(msg)` under `key`, bound to `aad`.
pub(crate) fn seal(key: &[u8; 32], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce = random_bytes::<NONCE_LEN>();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    [nonce.as_slice(), &sealed].concat()
}

/// Reverses [`seal`]; `None` when the key, the `aad` or any bit differs.
pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
}

/// Wraps a DEK under the master key: `nonce || AES-256-GCM(dek)` with the tenant id as AAD, so a
/// wrapped key moved to another tenant's row fails to unwrap.
pub fn wrap_dek(master: &MasterKey, tenant: &TenantId, dek: &DbKey) -> Vec<u8> {
    seal(master.expose(), tenant.as_str().as_bytes(), &dek.0)
}

/// Reverses [`wrap_dek`]; a wrong master key, a wrong tenant or a flipped bit all fail.
pub fn unwrap_dek(master: &MasterKey, tenant: &TenantId, wrapped: &[u8]) -> Result<DbKey> {
    let fail = || Error::Crypto(format!("the wrapped key of tenant {tenant} does not open"));
    if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
        return Err(fail());
    }
    let mut plain = open(master.expose(), tenant.as_str().as_bytes(), wrapped).ok_or_else(fail)?;
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&plain);
    plain.zeroize();
    Ok(DbKey(bytes))
}

/// SHA-256 of a secret (resume tokens, API key secrets); only this is ever stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time comparison of a presented secret against its stored hash.
pub fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    hash_secret(secret).ct_eq(stored_hash).into()
}

/// A fresh 256-bit secret as 64 hex digits (resume tokens, API key secrets).
pub fn random_token() -> String {
    hex::encode(random_bytes::<32>())
}

/// A short stable pseudonym: hex SHA-256 over the given parts, for identifiers sent upstream.
pub fn pseudonym(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    #[test]
    fn a_wrapped_dek_unwraps_with_the_same_key_and_tenant() {
        let master = MasterKey::generate();
        let dek = DbKey::generate();
        let wrapped = wrap_dek(&master, &tenant("acme"), &dek);
        assert_eq!(unwrap_dek(&master, &tenant("acme"), &wrapped).unwrap(), dek);
    }

    #[test]
    fn a_wrong_master_key_or_tenant_or_bit_fails_to_unwrap() {
        let master = MasterKey::generate();
        let dek = DbKey::generate();
        let wrapped = wrap_dek(&master, &tenant("acme"), &dek);
        assert!(unwrap_dek(&MasterKey::generate(), &tenant("acme"), &wrapped).is_err());
        assert!(unwrap_dek(&master, &tenant("other"), &wrapped).is_err());
        let mut flipped = wrapped.clone();
        flipped[20] ^= 1;
        assert!(unwrap_dek(&master, &tenant("acme"), &flipped).is_err());
        assert!(unwrap_dek(&master, &tenant("acme"), &wrapped[..40]).is_err());
    }

    #[test]
    fn wrapping_twice_gives_different_ciphertexts() {
        let master = MasterKey::generate();
        let dek = DbKey::generate();
        assert_ne!(
            wrap_dek(&master, &tenant("acme"), &dek),
            wrap_dek(&master, &tenant("acme"), &dek)
        );
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_master() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(
            derive_db_key(&a, KeyPurpose::Catalog),
            derive_db_key(&a, KeyPurpose::Keyring)
        );
        assert_ne!(
            derive_db_key(&a, KeyPurpose::Catalog),
            derive_db_key(&b, KeyPurpose::Catalog)
        );
        assert_eq!(
            derive_db_key(&a, KeyPurpose::Catalog),
            derive_db_key(&a, KeyPurpose::Catalog)
        );
    }

    #[test]
    fn secrets_match_only_their_own_hash() {
        let token = random_token();
        assert_eq!(token.len(), 64);
        let stored = hash_secret(&token);
        assert!(secret_matches(&token, &stored));
        assert!(!secret_matches(&random_token(), &stored));
        assert!(!secret_matches(&token, &stored[..31]));
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let dek = DbKey::from_bytes([0xab; 32]);
        assert!(!format!("{dek:?}").contains("abab"));
    }
}
