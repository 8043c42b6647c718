//! An independent reader of SQLCipher 4 files at their default settings, for proving that text is
//! gone: it decrypts every page of a database file and every frame of its `-wal`, so a test can
//! search the plaintext of live, free and stale pages alike.
//!
//! Format (SQLCipher 4 defaults): pages of 4096 bytes; each ends in 80 reserved bytes, a 16-byte
//! IV then a 64-byte HMAC-SHA512; the rest is AES-256-CBC without padding. With a raw
//! `x'…'` key the key is the AES key itself. Page 1 starts with the 16-byte salt, and its
//! encrypted region starts after it. A WAL is a 32-byte header, then frames of a 24-byte header
//! and one encrypted page.

use std::path::Path;

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

const PAGE: usize = 4096;
const RESERVE: usize = 80;
const IV: usize = 16;
const SALT: usize = 16;
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// The plaintext of every page of `db` and every frame of `db-wal`, read from copies taken now.
pub fn decrypt_all(db: &Path, key_hex: &str) -> Vec<Vec<u8>> {
    let key: [u8; 32] = hex::decode(key_hex).unwrap().try_into().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let db_copy = copy.path().join("t.db");
    let wal_copy = copy.path().join("t.db-wal");
    std::fs::copy(db, &db_copy).unwrap();
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_str().unwrap()));
    let has_wal = std::fs::copy(&wal, &wal_copy).is_ok();
    let mut pages: Vec<Vec<u8>> = std::fs::read(&db_copy)
        .unwrap()
        .chunks(PAGE)
        .enumerate()
        .map(|(i, page)| decrypt_page(&key, page, i + 1))
        .collect();
    if has_wal {
        let wal = std::fs::read(&wal_copy).unwrap();
        for frame in wal
            .get(WAL_HEADER..)
            .unwrap_or_default()
            .chunks(FRAME_HEADER + PAGE)
        {
            if frame.len() < FRAME_HEADER + PAGE {
                break;
            }
            let number = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            pages.push(decrypt_page(&key, &frame[FRAME_HEADER..], number));
        }
    }
    pages
}

/// The decrypted content area of one page (for page 1, the header after the salt onwards).
pub fn decrypt_page(key: &[u8; 32], page: &[u8], number: usize) -> Vec<u8> {
    assert_eq!(page.len(), PAGE, "a whole page");
    let start = if number == 1 { SALT } else { 0 };
    let iv: [u8; IV] = page[PAGE - RESERVE..PAGE - RESERVE + IV]
        .try_into()
        .unwrap();
    let mut data = page[start..PAGE - RESERVE].to_vec();
    Aes256CbcDec::new(key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .unwrap();
    data
}

/// How many decrypted pages contain `needle`.
pub fn pages_containing(pages: &[Vec<u8>], needle: &str) -> usize {
    pages
        .iter()
        .filter(|p| p.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .count()
}

/// True when page 1 decrypts to a SQLite header (page size 4096 at offset 16, read after the
/// salt): proof that the key and the format above are right, so an absent needle means something.
pub fn header_decrypts(pages: &[Vec<u8>]) -> bool {
    pages
        .first()
        .is_some_and(|p| p[0..2] == [0x10, 0x00] && p[4] == 80 && p[5] == 64)
}
