//! The shipped systemd unit keeps its hardening and passes `systemd-analyze verify` (when the
//! tool is present) with the binary this build produced.

use std::process::Command;

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/chatvault.service"
    ))
    .unwrap();
    for directive in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "StateDirectory=chatvault",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "LoadCredential=master.key:",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(directive), "the unit keeps {directive:?}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed: skipping `verify`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chatvault.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/chatvault", crate::cli::bin()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("chatvault.service"))
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{stderr}");
}
