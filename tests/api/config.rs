//! Configuration: file < environment < flags, `config check` with one line per problem, secrets
//! never inline, and the annotated example config passes as shipped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::cli::bin;

pub fn master_key() -> String {
    let out = Command::new(bin())
        .args(["key", "generate"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `config check --json` with a clean environment apart from `env`.
fn check(config: &Path, env: &[(&str, &str)]) -> (bool, Value) {
    let mut command = Command::new(bin());
    command
        .args(["config", "check", "--json", "--config"])
        .arg(config);
    clear_env(&mut command);
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

fn clear_env(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("CHATVAULT_") {
            command.env_remove(name);
        }
    }
}

/// Starts `serve`, returns the address it printed, and stops it.
fn listening_address(dir: &Path, key: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(bin());
    command.arg("serve").args(args).current_dir(dir);
    clear_env(&mut command);
    command
        .env("CHATVAULT_MASTER_KEY", key)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line.trim()
        .trim_start_matches("listening on http://")
        .to_owned()
}

#[test]
fn the_annotated_example_config_passes_config_check() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("chatvault.example.toml");
    let key = master_key();
    let (ok, report) = check(&example, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(ok, "{report}");
    assert_eq!(report, serde_json::json!({"ok": true, "problems": []}));
}

#[test]
fn flags_beat_the_environment_which_beats_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "c.toml",
        "bind = \"127.0.0.2:0\"\ndata_dir = \"from-file\"\n",
    );
    let file = file.to_str().unwrap();
    let key = master_key();
    let only_file = listening_address(tmp.path(), &key, &["--config", file], &[]);
    assert!(only_file.starts_with("127.0.0.2:"), "{only_file}");
    assert!(
        tmp.path().join("from-file/catalog.db").exists(),
        "data_dir comes from the file"
    );

    let env = [("CHATVAULT_BIND", "127.0.0.3:0")];
    let file_and_env = listening_address(tmp.path(), &key, &["--config", file], &env);
    assert!(file_and_env.starts_with("127.0.0.3:"), "{file_and_env}");

    let all = listening_address(
        tmp.path(),
        &key,
        &["--config", file, "--bind", "127.0.0.4:0"],
        &env,
    );
    assert!(all.starts_with("127.0.0.4:"), "{all}");
}

#[test]
fn config_check_names_each_problem_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "bad.toml",
        r#"
max_sockets = 0
trusted_proxies = ["10.0.0.0/8", "not-a-net"]
colour = "blue"
idle_timeout = "soon"

[llm]
base_url = "ftp://example.test"
first_token_timeout = "3m"
total_timeout = "1m"

[tls]
cert = "/nonexistent/cert.pem"
"#,
    );
    let (ok, report) = check(&file, &[]);
    assert!(!ok);
    assert_eq!(report["ok"], false);
    let problems: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let expected = [
        "unknown setting `colour`",
        "not-a-net",
        "idle_timeout",
        "llm.base_url",
        "llm.first_token_timeout",
        "tls: give both",
        "max_sockets must be at least 1",
        "no master key",
    ];
    for needle in expected {
        assert_eq!(
            problems.iter().filter(|p| p.contains(needle)).count(),
            1,
            "`{needle}` once in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn a_secret_written_inline_is_refused_and_never_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "sk-live-0123456789abcdef";
    let file = write(
        tmp.path(),
        "inline.toml",
        &format!(
            "master_key = \"{}\"\n[llm]\napi_key = \"{secret}\"\n",
            "ab".repeat(32)
        ),
    );
    let key = master_key();
    let (ok, report) = check(&file, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(!ok);
    let text = report.to_string();
    assert!(
        text.contains("`master_key`: secrets are never written in the config file"),
        "{text}"
    );
    assert!(
        text.contains("`llm.api_key`: secrets are never written"),
        "{text}"
    );
    assert!(
        !text.contains(secret) && !text.contains(&"ab".repeat(32)),
        "{text}"
    );

    let mut command = Command::new(bin());
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&file)
        .current_dir(tmp.path());
    clear_env(&mut command);
    let out = command.env("CHATVAULT_MASTER_KEY", &key).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secrets are never written") && !stderr.contains(secret),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "serve must not start");
}

#[test]
fn the_llm_key_variable_must_be_a_name_not_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "k.toml",
        "[llm]\napi_key_env = \"sk-proj-abc123\"\n",
    );
    let key = master_key();
    let (ok, report) = check(&file, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(!ok);
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("NAME of an environment variable"),
        "{report}"
    );
    assert!(!report.to_string().contains("sk-proj-abc123"));
}

#[test]
fn a_cluster_secret_must_be_well_formed_private_and_never_inline() {
    let dir = tempfile::tempdir().unwrap();
    let key = master_key();
    let secret = write(dir.path(), "cluster.key", &master_key());
    let config = write(
        dir.path(),
        "node.toml",
        &format!("cluster_secret_file = {:?}\n", secret.display().to_string()),
    );
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (ok, report) = check(&config, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(ok, "{report}");

    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (ok, report) = check(&config, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(!ok);
    assert!(
        report.to_string().contains("cluster secret file"),
        "{report}"
    );

    let inline = write(dir.path(), "inline.toml", "cluster_secret = \"00\"\n");
    let (ok, report) = check(&inline, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(!ok);
    assert!(report.to_string().contains("cluster_secret"), "{report}");

    let empty = write(dir.path(), "empty.toml", "");
    let (ok, report) = check(
        &empty,
        &[
            ("CHATVAULT_MASTER_KEY", &key),
            ("CHATVAULT_CLUSTER_SECRET", "not hex"),
        ],
    );
    assert!(!ok);
    assert!(
        report
            .to_string()
            .contains("cluster secret must be exactly 64 hex"),
        "{report}"
    );
}

#[test]
fn durability_is_full_or_normal() {
    let dir = tempfile::tempdir().unwrap();
    let key = master_key();
    let good = write(dir.path(), "good.toml", "durability = \"normal\"\n");
    let (ok, report) = check(&good, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(ok, "{report}");
    let bad = write(dir.path(), "bad.toml", "durability = \"sometimes\"\n");
    let (ok, report) = check(&bad, &[("CHATVAULT_MASTER_KEY", &key)]);
    assert!(!ok);
    assert!(
        report
            .to_string()
            .contains("durability: `sometimes` is not one of full, normal"),
        "{report}"
    );
}
