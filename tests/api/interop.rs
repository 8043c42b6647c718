//! A tenant file opens in an independent SQLCipher 4 implementation (PyPI `sqlcipher3`) with the
//! key `export-key` prints, and in nothing else: the `sqlite3` shell and `strings` see no content.

use std::process::Command;

use chatvault::domain::TenantId;

use crate::helpers::spawn_app;

const READ_WITH_SQLCIPHER3: &str = r#"
import json, sys
import sqlcipher3
path, key = sys.argv[1], sys.argv[2]
conn = sqlcipher3.connect(path)
conn.execute("PRAGMA key = \"x'%s'\"" % key)
version = conn.execute("PRAGMA cipher_version").fetchone()[0]
rows = conn.execute("SELECT role, text FROM messages ORDER BY seq").fetchall()
print(json.dumps({"cipher_version": version, "rows": rows}))
"#;

#[tokio::test]
async fn sqlcipher3_reads_a_tenant_file_with_the_exported_key_and_sqlite3_cannot() {
    let app = spawn_app().await;
    let canary = "INTEROP-CANARY-31337";
    let mut widget = app.widget().await;
    widget.exchange("a", &format!("hello {canary}")).await;
    drop(widget);
    let acme = TenantId::parse("acme").unwrap();
    let key = app.store.export_key(&acme, "test").await.unwrap().to_hex();
    let path = app.data_dir.join("acme.db");

    let out = Command::new("python3")
        .arg("-c")
        .arg(READ_WITH_SQLCIPHER3)
        .arg(&path)
        .arg(&key)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "sqlcipher3 could not read the file (the test command installs it with pip): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        read["cipher_version"].as_str().unwrap().starts_with('4'),
        "{read}"
    );
    assert_eq!(
        read["rows"][0],
        serde_json::json!(["visitor", format!("hello {canary}")])
    );
    assert_eq!(read["rows"][1][0], "assistant");

    let wrong = Command::new("python3")
        .arg("-c")
        .arg(READ_WITH_SQLCIPHER3)
        .arg(&path)
        .arg("00".repeat(32))
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "a wrong key must not open the file"
    );

    let shell = Command::new("sqlite3")
        .arg(&path)
        .arg("SELECT count(*) FROM sqlite_master;")
        .output()
        .expect("the sqlite3 shell is installed");
    assert!(
        !shell.status.success()
            || String::from_utf8_lossy(&shell.stderr).contains("not a database"),
        "sqlite3 opened an encrypted file"
    );

    let strings = Command::new("strings")
        .arg("-n")
        .arg("6")
        .args(
            std::fs::read_dir(&app.data_dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file()),
        )
        .output()
        .expect("strings is installed");
    let text = String::from_utf8_lossy(&strings.stdout);
    assert!(
        !text.contains(canary) && !text.contains("INTEROP"),
        "strings found content"
    );
    assert!(
        !text.contains("CREATE TABLE") && !text.contains("SQLite format"),
        "strings found schema or a plain header"
    );
}
