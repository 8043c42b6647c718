//! Master key rotation and tenant rekey, including crashes: the process is aborted at injected
//! points (`CHATVAULT_FAULT`), and afterwards exactly one of the two master keys opens the data
//! directory, every tenant is there, and every tenant file reads with the key the keyring gives.

use std::process::{Command, Output};

use serde_json::Value;

use crate::backup::{count_with_sqlcipher3, seed};
use crate::cli::{Cli, bin, error_line};

fn generate_key() -> String {
    let out = Command::new(bin())
        .args(["key", "generate"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn run_env(cli: &Cli, args: &[&str], key: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .arg("--data-dir")
        .arg(cli.data_dir())
        .env("CHATVAULT_MASTER_KEY", key)
        .env_remove("CHATVAULT_MASTER_KEY_FILE")
        .env_remove("CHATVAULT_NEW_MASTER_KEY")
        .env_remove("CHATVAULT_FAULT");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn json_with(cli: &Cli, args: &[&str], key: &str) -> Option<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run_env(cli, &all, key, &[]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Two tenants with one stored message each; returns their DEKs.
async fn setup(cli: &Cli) -> (String, String) {
    for id in ["alpha", "beta"] {
        cli.json(&["tenant", "create", id, "--origin", "https://shop.example"]);
    }
    seed(cli, &[("alpha", "ALPHA-CANARY"), ("beta", "BETA-CANARY")]).await;
    let key = |id| {
        cli.json(&["tenant", "export-key", id])["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    (key("alpha"), key("beta"))
}

/// Exactly one of the keys opens the directory; returns it after checking that nothing is lost.
fn the_one_key_that_opens(cli: &Cli, keys: [&str; 2], deks: &(String, String)) -> String {
    let opened: Vec<&str> = keys
        .into_iter()
        .filter(|key| json_with(cli, &["tenant", "list"], key).is_some())
        .collect();
    assert_eq!(
        opened.len(),
        1,
        "exactly one master key must open the data directory"
    );
    let key = opened[0];
    let other = keys.into_iter().find(|k| *k != key).unwrap();
    let line = error_line(&run_env(cli, &["tenant", "list"], other, &[]));
    assert!(line.contains("master key does not open"), "{line}");

    let tenants = json_with(cli, &["tenant", "list"], key).unwrap();
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 2, "{tenants}");
    for (id, dek, canary) in [
        ("alpha", &deks.0, "ALPHA-CANARY"),
        ("beta", &deks.1, "BETA-CANARY"),
    ] {
        let exported = json_with(cli, &["tenant", "export-key", id], key).unwrap();
        assert_eq!(
            &exported["key"],
            dek.as_str(),
            "the DEK of {id} is unchanged"
        );
        let path = cli.data_dir().join(format!("{id}.db"));
        assert_eq!(
            count_with_sqlcipher3(&path, dek, canary),
            Some(1),
            "{id}'s data"
        );
    }
    key.to_owned()
}

#[tokio::test]
async fn key_rotate_re_keys_catalog_and_keyring_and_the_old_key_stops_working() {
    let cli = Cli::new();
    let deks = setup(&cli).await;
    let alpha_before = std::fs::read(cli.data_dir().join("alpha.db")).unwrap();
    let new = generate_key();
    let out = run_env(
        &cli,
        &["key", "rotate", "--json"],
        &cli.master_key,
        &[("CHATVAULT_NEW_MASTER_KEY", &new)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tenants"], 2);
    assert!(report["rotated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        the_one_key_that_opens(&cli, [&cli.master_key, &new], &deks),
        new
    );
    assert_eq!(
        std::fs::read(cli.data_dir().join("alpha.db")).unwrap(),
        alpha_before,
        "tenant files are not rewritten"
    );
    let audit = json_with(&cli, &["verify"], &new).unwrap();
    assert_eq!(audit["ok"], true, "{audit}");
}

#[tokio::test]
async fn a_crash_at_any_point_of_a_rotation_leaves_exactly_one_key_working_and_loses_nothing() {
    for (point, new_key_wins) in [
        ("rotate:before-marker", false),
        ("rotate:after-marker", true),
        ("rotate:after-keyring", true),
        ("rotate:after-catalog", true),
    ] {
        let cli = Cli::new();
        let deks = setup(&cli).await;
        let new = generate_key();
        let crashed = run_env(
            &cli,
            &["key", "rotate"],
            &cli.master_key,
            &[
                ("CHATVAULT_NEW_MASTER_KEY", &new),
                ("CHATVAULT_FAULT", point),
            ],
        );
        assert!(
            !crashed.status.success(),
            "{point}: the process was aborted"
        );
        assert!(
            String::from_utf8_lossy(&crashed.stderr).contains(point),
            "{point}: the fault point was reached"
        );
        let winner = the_one_key_that_opens(&cli, [&cli.master_key, &new], &deks);
        let expected = if new_key_wins { &new } else { &cli.master_key };
        assert_eq!(&winner, expected, "{point}");
        // The state left behind is whole: a full rotation from it succeeds.
        let next = generate_key();
        let again = run_env(
            &cli,
            &["key", "rotate"],
            &winner,
            &[("CHATVAULT_NEW_MASTER_KEY", &next)],
        );
        assert!(
            again.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(the_one_key_that_opens(&cli, [&winner, &next], &deks), next);
    }
}

#[test]
fn key_rotate_needs_a_new_key() {
    let cli = Cli::new();
    cli.json(&["tenant", "list"]);
    let line = error_line(&run_env(&cli, &["key", "rotate"], &cli.master_key, &[]));
    assert!(line.contains("CHATVAULT_NEW_MASTER_KEY"), "{line}");
    let same = run_env(
        &cli,
        &["key", "rotate"],
        &cli.master_key,
        &[("CHATVAULT_NEW_MASTER_KEY", &cli.master_key)],
    );
    assert!(error_line(&same).contains("current one"));
}

#[tokio::test]
async fn tenant_rekey_gives_a_new_dek_and_the_old_one_stops_opening_the_file() {
    let cli = Cli::new();
    let (alpha_old, _) = setup(&cli).await;
    let rekeyed = cli.json(&["tenant", "rekey", "alpha"]);
    assert_eq!(rekeyed["tenant"], "alpha");
    assert!(rekeyed["rekeyed_at"].as_str().unwrap().ends_with('Z'));
    let alpha_new = cli.json(&["tenant", "export-key", "alpha"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(alpha_new, alpha_old);
    let path = cli.data_dir().join("alpha.db");
    assert_eq!(
        count_with_sqlcipher3(&path, &alpha_new, "ALPHA-CANARY"),
        Some(1)
    );
    assert_eq!(
        count_with_sqlcipher3(&path, &alpha_old, "ALPHA-CANARY"),
        None
    );
    let verified = cli.json(&["verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
}

#[tokio::test]
async fn a_crash_during_a_rekey_settles_on_the_key_that_opens_the_file() {
    for (point, changed) in [("rekey:after-stage", false), ("rekey:after-rekey", true)] {
        let cli = Cli::new();
        let (alpha_old, _) = setup(&cli).await;
        let crashed = run_env(
            &cli,
            &["tenant", "rekey", "alpha"],
            &cli.master_key,
            &[("CHATVAULT_FAULT", point)],
        );
        assert!(!crashed.status.success(), "{point}");
        let key = cli.json(&["tenant", "export-key", "alpha"])["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(key != alpha_old, changed, "{point}");
        let path = cli.data_dir().join("alpha.db");
        assert_eq!(
            count_with_sqlcipher3(&path, &key, "ALPHA-CANARY"),
            Some(1),
            "{point}"
        );
        if changed {
            assert_eq!(
                count_with_sqlcipher3(&path, &alpha_old, "ALPHA-CANARY"),
                None,
                "{point}"
            );
        }
        assert_eq!(cli.json(&["verify"])["ok"], true, "{point}");
    }
}
