//! Backups that a purge still reaches: `backup` never copies the keyring, so destroying a DEK
//! makes that tenant's copy in every backup unreadable; `restore` brings back the rest; `verify`
//! catches a damaged file. Files are read with an independent SQLCipher 4 (PyPI `sqlcipher3`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use chatvault::crypto::MasterKey;
use chatvault::datadir::DataDir;
use chatvault::domain::{ConversationId, Role, SubmitId, TenantId};
use chatvault::store::Store;
use chatvault::vault::repo::{self, NewMessage};
use serde_json::Value;

use crate::cli::{Cli, Server, error_line};

const COUNT_WITH_SQLCIPHER3: &str = r#"
import sys
import sqlcipher3
path, key, needle = sys.argv[1], sys.argv[2], sys.argv[3]
conn = sqlcipher3.connect(path)
conn.execute("PRAGMA key = \"x'%s'\"" % key)
print(conn.execute("SELECT count(*) FROM messages WHERE instr(text, ?) > 0", (needle,)).fetchone()[0])
"#;

/// Messages containing `needle` in the file, read by sqlcipher3; `None` if the key does not open it.
pub fn count_with_sqlcipher3(path: &Path, key: &str, needle: &str) -> Option<i64> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(COUNT_WITH_SQLCIPHER3)
        .arg(path)
        .arg(key)
        .arg(needle)
        .output()
        .expect("python3 runs");
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Stores one visitor message in a new conversation of each tenant, through the library.
pub async fn seed(cli: &Cli, messages: &[(&str, &str)]) {
    let master = MasterKey::from_hex(&cli.master_key).unwrap();
    let store = Store::open(DataDir::open(cli.data_dir()).unwrap(), &master, 4).unwrap();
    for (tenant, text) in messages {
        let text = (*text).to_owned();
        store
            .vault
            .call(&TenantId::parse(tenant).unwrap(), move |conn| {
                let conversation = ConversationId::generate();
                repo::create_conversation(conn, &conversation, b"hash", chatvault::db::now_ms())?;
                let submit = SubmitId::parse("s1").unwrap();
                let message = NewMessage {
                    conversation: &conversation,
                    role: Role::Visitor,
                    text: &text,
                    at: chatvault::db::now_ms(),
                    submit_id: Some(&submit),
                    reply_to: None,
                    tokens: 1,
                };
                repo::insert_message(conn, &message)?;
                Ok(())
            })
            .await
            .unwrap();
        // Everything into the main file now, so later file edits meet no pending WAL.
        store
            .vault
            .exclusive(&TenantId::parse(tenant).unwrap(), |conn| {
                Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
            })
            .await
            .unwrap();
    }
}

fn create(cli: &Cli, id: &str) {
    cli.json(&["tenant", "create", id, "--origin", "https://shop.example"]);
}

fn key_of(cli: &Cli, id: &str) -> String {
    cli.json(&["tenant", "export-key", id])["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_purge_after_a_backup_makes_that_tenants_copy_unreadable_and_restore_keeps_the_rest() {
    let cli = Cli::new();
    create(&cli, "alpha");
    create(&cli, "beta");
    seed(
        &cli,
        &[
            ("alpha", "alpha says ALPHA-CANARY"),
            ("beta", "beta says BETA-CANARY"),
        ],
    )
    .await;
    let alpha_old = key_of(&cli, "alpha");
    let beta_key = key_of(&cli, "beta");

    let out = cli.dir.path().join("backup-1");
    let report = cli.json(&["backup", "--out", out.to_str().unwrap()]);
    assert_eq!(report["tenants"], 2, "{report}");
    assert!(report["bytes"].as_u64().unwrap() > 0);
    assert_eq!(report["out"], out.to_str().unwrap());
    assert!(
        !out.join("keyring.db").exists(),
        "the keyring is never backed up"
    );
    assert_eq!(mode(&out), 0o700);
    for name in ["catalog.db", "alpha.db", "beta.db"] {
        assert_eq!(mode(&out.join(name)), 0o600, "{name}");
    }
    let backed_up_alpha = out.join("alpha.db");
    assert_eq!(
        count_with_sqlcipher3(&backed_up_alpha, &alpha_old, "ALPHA-CANARY"),
        Some(1),
        "with its DEK, the backed-up file is readable (so the check below can fail)"
    );

    cli.json(&["tenant", "purge", "alpha"]);
    let alpha_new = key_of(&cli, "alpha");
    assert_ne!(alpha_new, alpha_old);

    let refused = cli.run(&["restore", "--from", out.to_str().unwrap()]);
    assert!(error_line(&refused).contains("--force"));
    let restored = cli.json(&["restore", "--from", out.to_str().unwrap(), "--force"]);
    assert_eq!(
        restored["restored"],
        serde_json::json!(["beta"]),
        "{restored}"
    );
    assert_eq!(
        restored["unreadable"],
        serde_json::json!(["alpha"]),
        "{restored}"
    );

    assert_eq!(
        count_with_sqlcipher3(&backed_up_alpha, &alpha_new, "ALPHA-CANARY"),
        None,
        "no key in the keyring opens alpha's backed-up file"
    );
    let data = cli.data_dir();
    assert_eq!(
        count_with_sqlcipher3(&data.join("beta.db"), &beta_key, "BETA-CANARY"),
        Some(1)
    );
    assert_eq!(
        count_with_sqlcipher3(&data.join("alpha.db"), &alpha_new, "ALPHA"),
        Some(0)
    );
    let tenants = cli.json(&["tenant", "list"]);
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 2, "{tenants}");

    let verified = cli.json(&["verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    let files: Vec<&str> = verified["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["catalog.db", "keyring.db", "alpha.db", "beta.db"]);
}

#[tokio::test]
async fn a_tenant_deleted_after_a_backup_stays_deleted_after_restore() {
    let cli = Cli::new();
    create(&cli, "alpha");
    create(&cli, "beta");
    seed(&cli, &[("beta", "BETA-CANARY")]).await;
    let out = cli.dir.path().join("backup-2");
    cli.json(&["backup", "--out", out.to_str().unwrap()]);
    cli.json(&["tenant", "delete", "beta"]);
    let restored = cli.json(&["restore", "--from", out.to_str().unwrap(), "--force"]);
    assert_eq!(
        restored["unreadable"],
        serde_json::json!(["beta"]),
        "{restored}"
    );
    let tenants = cli.json(&["tenant", "list"]);
    let ids: Vec<&str> = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha"]);
    assert!(!cli.data_dir().join("beta.db").exists());
}

#[test]
fn restore_needs_the_keyring_and_refuses_a_second_backup_into_a_used_directory() {
    let cli = Cli::new();
    create(&cli, "alpha");
    let out = cli.dir.path().join("backup-3");
    cli.json(&["backup", "--out", out.to_str().unwrap()]);
    assert!(
        error_line(&cli.run(&["backup", "--out", out.to_str().unwrap()])).contains("not empty")
    );

    std::fs::remove_file(cli.data_dir().join("keyring.db")).unwrap();
    let line = error_line(&cli.run(&["restore", "--from", out.to_str().unwrap(), "--force"]));
    assert!(line.contains("keyring"), "{line}");
}

#[tokio::test]
async fn verify_reports_a_damaged_tenant_file_and_exits_non_zero() {
    let cli = Cli::new();
    create(&cli, "alpha");
    create(&cli, "beta");
    seed(&cli, &[("beta", "some text")]).await;
    let path = cli.data_dir().join("beta.db");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 200;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let out = cli.run(&["verify", "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let files = report["files"].as_array().unwrap();
    let beta = files.iter().find(|f| f["file"] == "beta.db").unwrap();
    assert_eq!(beta["ok"], false, "{report}");
    assert!(beta["error"].is_string());
    let alpha = files.iter().find(|f| f["file"] == "alpha.db").unwrap();
    assert_eq!(alpha["ok"], true, "{report}");
}

#[tokio::test]
async fn backup_runs_beside_a_server_and_offline_maintenance_refuses_to() {
    let cli = Cli::new();
    create(&cli, "alpha");
    seed(&cli, &[("alpha", "ALPHA-CANARY")]).await;
    let alpha = key_of(&cli, "alpha");
    let server = Server::serve(&cli, &[], &[]);

    let out = cli.dir.path().join("online");
    let report = cli.json(&["backup", "--out", out.to_str().unwrap()]);
    assert_eq!(report["tenants"], 1);
    assert_eq!(
        count_with_sqlcipher3(&out.join("alpha.db"), &alpha, "ALPHA-CANARY"),
        Some(1)
    );
    let from = out.to_str().unwrap();
    for args in [
        vec!["restore", "--from", from, "--force"],
        vec!["key", "rotate"],
        vec!["tenant", "rekey", "alpha"],
    ] {
        let mut command = Command::new(crate::cli::bin());
        let output = command
            .args(&args)
            .arg("--data-dir")
            .arg(cli.data_dir())
            .env("CHATVAULT_MASTER_KEY", &cli.master_key)
            .env("CHATVAULT_NEW_MASTER_KEY", "ab".repeat(32))
            .output()
            .unwrap();
        let line = error_line(&output);
        assert!(line.contains("server"), "{args:?}: {line}");
    }
    drop(server);
    assert_eq!(
        count_with_sqlcipher3(&cli.data_dir().join("alpha.db"), &alpha, "ALPHA-CANARY"),
        Some(1),
        "nothing was changed by the refused commands"
    );
}

const CHECK_WITH_SQLCIPHER3: &str = r#"
import sys
import sqlcipher3
conn = sqlcipher3.connect(sys.argv[1])
conn.execute("PRAGMA key = \"x'%s'\"" % sys.argv[2])
ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
bad = conn.execute("PRAGMA cipher_integrity_check").fetchall()
count = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
print(ok, len(bad), count)
"#;

/// "ok 0 N": integrity_check, failing cipher pages, message count.
fn check_with_sqlcipher3(path: &Path, key: &str) -> String {
    let check = Command::new("python3")
        .args(["-c", CHECK_WITH_SQLCIPHER3])
        .arg(path)
        .arg(key)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&check.stdout).trim().to_owned();
    assert!(
        check.status.success(),
        "{line} {}",
        String::from_utf8_lossy(&check.stderr)
    );
    line
}

#[tokio::test]
async fn backups_taken_while_visitors_write_are_each_consistent() {
    let cli = Cli::new();
    let created = cli.json(&[
        "tenant",
        "create",
        "alpha",
        "--origin",
        "https://shop.example",
    ]);
    let widget_key = created["widget_key"].as_str().unwrap().to_owned();
    let alpha = key_of(&cli, "alpha");
    let server = Server::serve(&cli, &[], &[]);
    let writers: Vec<_> = (0..4)
        .map(|socket| {
            let url = format!("ws://{}/v1/widget/ws?key={widget_key}", server.addr);
            tokio::spawn(async move {
                use tokio_tungstenite::tungstenite::client::IntoClientRequest;
                let mut request = url.into_client_request().unwrap();
                let origin = "https://shop.example".parse().unwrap();
                request.headers_mut().insert("origin", origin);
                let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
                let mut widget = crate::helpers::Widget { ws };
                widget.next().await;
                for n in 0..5 {
                    let frames = widget
                        .exchange(&format!("m{n}"), &format!("socket {socket} message {n}"))
                        .await;
                    assert_eq!(frames.last().unwrap()["type"], "done", "{frames:?}");
                }
            })
        })
        .collect();
    let mut counts = Vec::new();
    for round in 0..3 {
        let out = cli.dir.path().join(format!("online-{round}"));
        let path = out.to_str().unwrap().to_owned();
        let report = tokio::task::spawn_blocking({
            let cli_dir = cli.data_dir();
            let key = cli.master_key.clone();
            move || {
                Command::new(crate::cli::bin())
                    .args(["backup", "--json", "--out", &path, "--data-dir"])
                    .arg(cli_dir)
                    .env("CHATVAULT_MASTER_KEY", key)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(
            report.status.success(),
            "{}",
            String::from_utf8_lossy(&report.stderr)
        );
        let line = check_with_sqlcipher3(&out.join("alpha.db"), &alpha);
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[..2], ["ok", "0"], "backup {round}: {line}");
        counts.push(parts[2].parse::<i64>().unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    let last = cli.dir.path().join("online-final");
    cli.json(&["backup", "--out", last.to_str().unwrap()]);
    // Every exchange ended in `done`: 20 visitor messages and 20 replies.
    assert_eq!(
        check_with_sqlcipher3(&last.join("alpha.db"), &alpha),
        "ok 0 40"
    );
    drop(server);
}
