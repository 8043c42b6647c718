use std::sync::Arc;

use super::*;
use crate::crypto::MasterKey;
use crate::domain::{ConversationId, Role, SubmitId};
use crate::vault::repo::{self, NewMessage};

struct Fixture {
    _tmp: tempfile::TempDir,
    vault: Vault,
}

fn fixture(max_open: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path().join("tenants")).unwrap();
    let keyring = Keyring::open(&dir, &MasterKey::generate()).unwrap();
    Fixture {
        vault: Vault::new(dir, keyring, max_open),
        _tmp: tmp,
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

async fn create(vault: &Vault, id: &TenantId) {
    let (vault, id) = (vault.clone(), id.clone());
    tokio::task::spawn_blocking(move || vault.create_tenant_blocking(&id))
        .await
        .unwrap()
        .unwrap();
}

/// Stores one visitor message in a new conversation.
async fn insert(vault: &Vault, id: &TenantId, text: &str) -> Result<()> {
    let text = text.to_owned();
    vault
        .call(id, move |conn| {
            let conv = ConversationId::generate();
            repo::create_conversation(conn, &conv, b"h", 1)?;
            let submit = SubmitId::parse("s").unwrap();
            let msg = NewMessage {
                conversation: &conv,
                role: Role::Visitor,
                text: &text,
                at: 2,
                submit_id: Some(&submit),
                reply_to: None,
                tokens: 1,
            };
            repo::insert_message(conn, &msg)?;
            Ok(())
        })
        .await
}

async fn totals(vault: &Vault, id: &TenantId) -> repo::Totals {
    vault.call(id, repo::totals).await.unwrap()
}

#[tokio::test]
async fn a_purge_reports_and_removes_everything_and_the_tenant_keeps_working() {
    let f = fixture(8);
    let acme = tenant("acme");
    create(&f.vault, &acme).await;
    for i in 0..5 {
        insert(&f.vault, &acme, &format!("message {i}"))
            .await
            .unwrap();
    }
    let report = f.vault.purge(&acme).await.unwrap();
    assert_eq!((report.conversations, report.messages), (5, 5));
    assert_eq!(totals(&f.vault, &acme).await, repo::Totals::default());
    insert(&f.vault, &acme, "after").await.unwrap();
    assert_eq!(totals(&f.vault, &acme).await.messages, 1);
}

#[tokio::test]
async fn the_purged_file_does_not_open_with_any_key_the_keyring_still_has() {
    let f = fixture(8);
    let acme = tenant("acme");
    create(&f.vault, &acme).await;
    insert(&f.vault, &acme, "secret").await.unwrap();
    let old_key = tokio::task::spawn_blocking({
        let v = f.vault.clone();
        let id = acme.clone();
        move || v.tenant_key_blocking(&id)
    })
    .await
    .unwrap()
    .unwrap();
    // Keep a copy of the file as a backup would.
    let path = f.vault.dir().tenant_path(&acme);
    f.vault
        .exclusive(&acme, |c| {
            Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
        })
        .await
        .unwrap();
    let backup = path.with_extension("backup");
    std::fs::copy(&path, &backup).unwrap();
    f.vault.purge(&acme).await.unwrap();
    let new_key = tokio::task::spawn_blocking({
        let v = f.vault.clone();
        let id = acme.clone();
        move || v.tenant_key_blocking(&id)
    })
    .await
    .unwrap()
    .unwrap();
    assert_ne!(old_key, new_key);
    assert!(db::open_encrypted(&backup, &new_key, OpenMode::Existing).is_err());
}

#[tokio::test]
async fn purges_racing_inserts_never_lose_an_acknowledged_write_to_the_new_file() {
    let f = fixture(8);
    let acme = tenant("acme");
    create(&f.vault, &acme).await;
    let mut writers = Vec::new();
    for w in 0..4 {
        let vault = f.vault.clone();
        let id = acme.clone();
        writers.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..50 {
                if insert(&vault, &id, &format!("w{w} m{i}")).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut purged = 0;
    for _ in 0..10 {
        purged += f.vault.purge(&acme).await.unwrap().messages;
        tokio::task::yield_now().await;
    }
    let mut acknowledged = 0;
    for w in writers {
        acknowledged += w.await.unwrap();
    }
    let remaining = totals(&f.vault, &acme).await.messages;
    assert_eq!(
        acknowledged, 200,
        "every insert succeeds, before or after a purge"
    );
    assert_eq!(
        purged + remaining,
        acknowledged,
        "each write landed in exactly one file"
    );
}

#[tokio::test]
async fn open_files_stay_within_the_bound_across_many_tenants() {
    let f = fixture(4);
    let ids: Vec<_> = (0..40).map(|i| tenant(&format!("t{i}"))).collect();
    for id in &ids {
        create(&f.vault, id).await;
        insert(&f.vault, id, "x").await.unwrap();
        assert!(
            f.vault.open_files() <= 4 + 1,
            "open files: {}",
            f.vault.open_files()
        );
    }
    for id in &ids {
        assert_eq!(
            totals(&f.vault, id).await.messages,
            1,
            "reopening is invisible to callers"
        );
    }
}

#[tokio::test]
async fn a_corrupted_tenant_file_fails_alone() {
    let f = fixture(8);
    let (good, bad) = (tenant("good"), tenant("bad"));
    create(&f.vault, &good).await;
    create(&f.vault, &bad).await;
    std::fs::write(f.vault.dir().tenant_path(&bad), vec![0x42u8; 8192]).unwrap();
    let err = insert(&f.vault, &bad, "x").await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    insert(&f.vault, &good, "x").await.unwrap();
}

#[tokio::test]
async fn a_deleted_tenant_is_gone_with_its_key_and_files() {
    let f = fixture(8);
    let acme = tenant("acme");
    create(&f.vault, &acme).await;
    insert(&f.vault, &acme, "x").await.unwrap();
    assert!(f.vault.delete(&acme).await.unwrap());
    assert!(!f.vault.dir().tenant_path(&acme).exists());
    assert!(insert(&f.vault, &acme, "y").await.is_err());
    let keyring = Arc::new(f.vault.keyring().clone());
    assert!(keyring.tenant_ids().await.unwrap().is_empty());
}

#[tokio::test]
async fn tenants_reopened_while_their_evicted_file_is_closing_lose_no_write() {
    // One open file for two tenants: every call evicts the other tenant, whose file is closed in
    // the background while the next call may already reopen it.
    let f = fixture(1);
    let (a, b) = (tenant("ta"), tenant("tb"));
    create(&f.vault, &a).await;
    create(&f.vault, &b).await;
    let mut writers = Vec::new();
    for w in 0..4 {
        let (vault, a, b) = (f.vault.clone(), a.clone(), b.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let id = if (w + i) % 2 == 0 { &a } else { &b };
                insert(&vault, id, &format!("w{w} m{i}")).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(totals(&f.vault, &a).await.messages, 50);
    assert_eq!(totals(&f.vault, &b).await.messages, 50);
    assert!(f.vault.open_files() <= 1 + 1);
}

#[tokio::test]
async fn the_chosen_durability_holds_for_every_tenant_file_and_survives_a_purge() {
    async fn synchronous(vault: &Vault, id: &TenantId) -> i64 {
        vault
            .call(id, |c| {
                Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
            })
            .await
            .unwrap()
    }
    let full = fixture(4);
    let acme = tenant("acme");
    create(&full.vault, &acme).await;
    assert_eq!(synchronous(&full.vault, &acme).await, 2, "FULL by default");

    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path().join("tenants")).unwrap();
    let keyring = Keyring::open(&dir, &MasterKey::generate()).unwrap();
    let relaxed = Vault::new(dir, keyring, 4).with_durability(db::Durability::Normal);
    create(&relaxed, &acme).await;
    insert(&relaxed, &acme, "hello").await.unwrap();
    assert_eq!(synchronous(&relaxed, &acme).await, 1, "NORMAL when chosen");
    relaxed.purge(&acme).await.unwrap();
    assert_eq!(synchronous(&relaxed, &acme).await, 1, "and after a purge");
    assert_eq!(
        db::Durability::parse("normal"),
        Some(db::Durability::Normal)
    );
    assert_eq!(db::Durability::parse("off"), None);
}
