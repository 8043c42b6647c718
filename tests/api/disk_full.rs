//! A full disk: on a small tmpfs data directory, writes fail with `storage_unavailable`, nothing
//! is corrupted, and service resumes when space returns. Needs root (the test command runs as
//! root, as CI does) to mount the tmpfs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::spawn_app_at;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root; the test command runs as root"
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros until the filesystem refuses.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file
        .write_all(&block)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
}

#[tokio::test]
async fn a_full_disk_refuses_writes_cleanly_and_service_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("tenants");
    let _mount = Tmpfs::mount(&data_dir, "8m");
    let app = spawn_app_at(tmp, data_dir.clone(), |_| {}).await;
    let mut widget = app.widget().await;
    assert_eq!(
        widget
            .exchange("before", "stored before the disk fills")
            .await
            .last()
            .unwrap()["type"],
        "done"
    );

    let filler = data_dir.join("filler");
    fill(&filler);
    let mut codes = Vec::new();
    for i in 0..5 {
        let frames = widget
            .exchange(
                &format!("full{i}"),
                &"a long message that needs new pages ".repeat(50),
            )
            .await;
        // The reply's request may already be upstream when the commit fails; it is cancelled
        // and nothing of it reaches the visitor, who never saw `accepted` either.
        if frames.last().unwrap()["code"] == "storage_unavailable" {
            assert!(
                frames
                    .iter()
                    .all(|f| f["type"] != "delta" && f["type"] != "accepted"),
                "an unsaved message is never answered: {frames:?}"
            );
        }
        codes.push(
            frames.last().unwrap()["code"]
                .as_str()
                .unwrap_or("none")
                .to_owned(),
        );
    }
    assert!(
        codes.iter().any(|c| c == "storage_unavailable"),
        "writes on a full disk fail as storage_unavailable: {codes:?}"
    );
    assert!(
        reqwest::get(app.http("/healthz"))
            .await
            .unwrap()
            .status()
            .is_success(),
        "the server keeps running"
    );

    std::fs::remove_file(&filler).unwrap();
    let frames = widget
        .exchange("after", "stored after space returned")
        .await;
    assert_eq!(
        frames.last().unwrap()["type"],
        "done",
        "service resumes: {frames:?}"
    );

    let verify = Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .args(["verify", "--json", "--data-dir"])
        .arg(&data_dir)
        .env("CHATVAULT_MASTER_KEY", app.master_key.to_hex())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap_or_default();
    assert_eq!(report["ok"], true, "no file is corrupted: {report}");
    let acme = chatvault::domain::TenantId::parse("acme").unwrap();
    let texts: Vec<String> = app
        .store
        .vault
        .call(&acme, |c| {
            let mut stmt =
                c.prepare("SELECT text FROM messages WHERE role = 'visitor' ORDER BY seq")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(rows)
        })
        .await
        .unwrap();
    assert_eq!(
        texts.first().map(String::as_str),
        Some("stored before the disk fills")
    );
    assert_eq!(
        texts.last().map(String::as_str),
        Some("stored after space returned")
    );
}
