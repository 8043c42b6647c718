//! The built binary, driven as an operator would, with `--json`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct Cli {
    pub dir: tempfile::TempDir,
    pub master_key: String,
}

impl Cli {
    pub fn new() -> Self {
        let master_key = String::from_utf8(
            Command::new(bin())
                .args(["key", "generate"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned();
        Self {
            dir: tempfile::tempdir().unwrap(),
            master_key,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("tenants")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_key(args, &self.master_key)
    }

    pub fn run_with_key(&self, args: &[&str], key: &str) -> Output {
        Command::new(bin())
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("CHATVAULT_MASTER_KEY", key)
            .env_remove("CHATVAULT_MASTER_KEY_FILE")
            .output()
            .unwrap()
    }

    /// Runs with `--json`, expects success, parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chatvault")
}

/// A `chatvault serve` (or `demo`) child process, killed when dropped, and the address it
/// printed.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Server {
    /// Spawns `command` with stdout piped and waits for its `listening on http://ADDR` line.
    pub fn spawn(command: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("no listening line: {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// `chatvault serve` on the CLI's data directory and master key, with more flags and
    /// environment; the offline responder unless `--llm-base-url` is given; logs discarded.
    pub fn serve(cli: &Cli, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(
            Command::new(bin())
                .args(["serve", "--bind", "127.0.0.1:0"])
                .args(args)
                .arg("--data-dir")
                .arg(cli.data_dir())
                .env("CHATVAULT_MASTER_KEY", &cli.master_key)
                .env_remove("CHATVAULT_MASTER_KEY_FILE")
                .env_remove("CHATVAULT_LLM_BASE_URL")
                .env("RUST_LOG", "warn")
                .envs(env.iter().copied())
                .stderr(std::process::Stdio::null()),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one-line error of a failed command.
pub fn error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line in: {stderr}");
    lines[0].to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_generate_prints_64_hex_and_json() {
    let out = Command::new(bin())
        .args(["key", "generate", "--json"])
        .output()
        .unwrap();
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = value["master_key"].as_str().unwrap();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn tenant_lifecycle_through_the_cli() {
    let cli = Cli::new();
    let created = cli.json(&[
        "tenant",
        "create",
        "acme",
        "--origin",
        "https://acme.example",
        "--name",
        "Acme",
    ]);
    assert_eq!(created["tenant"], "acme");
    assert!(created["widget_key"].as_str().unwrap().starts_with("wk_"));
    assert!(created["api_key"].as_str().unwrap().starts_with("cvk_"));

    let list = cli.json(&["tenant", "list"]);
    let tenants = list["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(
        (tenants[0]["id"].as_str(), tenants[0]["name"].as_str()),
        (Some("acme"), Some("Acme"))
    );
    assert_eq!(tenants[0]["origins"][0], "https://acme.example");
    assert!(tenants[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let key = cli.json(&["tenant", "export-key", "acme"]);
    assert_eq!(key["key"].as_str().unwrap().len(), 64);

    let purged = cli.json(&["tenant", "purge", "acme"]);
    assert_eq!(
        (
            purged["tenant"].as_str(),
            purged["conversations"].as_i64(),
            purged["messages"].as_i64()
        ),
        (Some("acme"), Some(0), Some(0))
    );
    assert!(purged["purged_at"].is_string());
    let after = cli.json(&["tenant", "export-key", "acme"]);
    assert_ne!(after["key"], key["key"], "a purge replaces the DEK");

    let deleted = cli.json(&["tenant", "delete", "acme"]);
    assert_eq!(deleted["tenant"], "acme");
    assert!(!cli.data_dir().join("acme.db").exists());
    assert!(
        cli.json(&["tenant", "list"])["tenants"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(error_line(&cli.run(&["tenant", "export-key", "acme"])).contains("not found"));
}

#[test]
fn files_are_private() {
    let cli = Cli::new();
    cli.json(&[
        "tenant",
        "create",
        "acme",
        "--origin",
        "https://acme.example",
    ]);
    assert_eq!(mode(&cli.data_dir()), 0o700);
    for entry in std::fs::read_dir(cli.data_dir()).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[test]
fn bad_input_gets_one_clear_error_line_and_touches_nothing() {
    let cli = Cli::new();
    cli.json(&[
        "tenant",
        "create",
        "acme",
        "--origin",
        "https://acme.example",
    ]);
    for bad in ["../x", "Acme", "", &"a".repeat(200), "catalog"] {
        let out = cli.run(&["tenant", "create", bad, "--origin", "https://x.example"]);
        assert!(error_line(&out).contains("tenant id"), "{bad:?}");
    }
    assert!(!cli.dir.path().join("x.db").exists());
    assert!(
        error_line(&cli.run(&[
            "tenant",
            "create",
            "acme",
            "--origin",
            "https://acme.example"
        ]))
        .contains("already exists")
    );
    assert!(
        error_line(&cli.run(&["tenant", "create", "beta", "--origin", "acme.example"]))
            .contains("not an origin")
    );

    let catalog = cli.data_dir().join("catalog.db");
    let before = std::fs::read(&catalog).unwrap();
    let wrong = String::from_utf8(
        Command::new(bin())
            .args(["key", "generate"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let line = error_line(&cli.run_with_key(&["tenant", "list"], wrong.trim()));
    assert!(
        line.contains("the master key does not open") && line.contains("catalog.db"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(&catalog).unwrap(),
        before,
        "a wrong key touches no file"
    );

    let out = Command::new(bin())
        .args(["tenant", "list", "--data-dir"])
        .arg(cli.data_dir())
        .env_remove("CHATVAULT_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        error_line(&out).contains("key generate"),
        "a missing key says how to make one"
    );
    assert!(error_line(&cli.run_with_key(&["tenant", "list"], "abc")).contains("64 hex"));
}

#[test]
fn a_master_key_file_must_be_private() {
    let cli = Cli::new();
    let key_file = cli.dir.path().join("master.key");
    std::fs::write(&key_file, &cli.master_key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = || {
        Command::new(bin())
            .args(["tenant", "list", "--json", "--master-key-file"])
            .arg(&key_file)
            .arg("--data-dir")
            .arg(cli.data_dir())
            .env_remove("CHATVAULT_MASTER_KEY")
            .output()
            .unwrap()
    };
    assert!(error_line(&run()).contains("0600"));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(run().status.success());
}

#[test]
fn a_missing_data_dir_is_created_private() {
    let cli = Cli::new();
    assert!(!cli.data_dir().exists());
    cli.json(&["tenant", "list"]);
    assert_eq!(mode(&cli.data_dir()), 0o700);
}

#[test]
fn audit_verify_detects_an_edited_entry() {
    use chatvault::crypto::{KeyPurpose, MasterKey, derive_db_key};
    let cli = Cli::new();
    cli.json(&[
        "tenant",
        "create",
        "acme",
        "--origin",
        "https://acme.example",
    ]);
    cli.json(&["tenant", "export-key", "acme"]);
    cli.json(&["user", "add", "acme", "ann@acme.example", "--role", "owner"]);
    let intact = cli.json(&["audit", "verify", "acme"]);
    assert_eq!(
        (intact["ok"].as_bool(), intact["entries"].as_i64()),
        (Some(true), Some(3))
    );

    let key = derive_db_key(
        &MasterKey::from_hex(&cli.master_key).unwrap(),
        KeyPurpose::Catalog,
    );
    let conn = chatvault::db::open_encrypted(
        &cli.data_dir().join("catalog.db"),
        &key,
        chatvault::db::OpenMode::Existing,
    )
    .unwrap();
    conn.execute(
        "UPDATE audit SET actor = 'someone else' WHERE action = 'tenant.key_exported'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = cli.run(&["audit", "verify", "acme", "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["ok"].as_bool(), report["first_bad"].as_i64()),
        (Some(false), Some(2))
    );
}

#[test]
fn user_add_prints_a_one_time_password() {
    let cli = Cli::new();
    cli.json(&[
        "tenant",
        "create",
        "acme",
        "--origin",
        "https://acme.example",
    ]);
    let added = cli.json(&["user", "add", "acme", "Ann@Acme.example", "--role", "admin"]);
    assert_eq!(
        (added["tenant"].as_str(), added["email"].as_str()),
        (Some("acme"), Some("ann@acme.example"))
    );
    assert!(added["password"].as_str().unwrap().len() >= 16);
    assert!(
        error_line(&cli.run(&["user", "add", "acme", "ann@acme.example", "--role", "admin"]))
            .contains("already exists")
    );
    assert!(
        error_line(&cli.run(&["user", "add", "nope", "bob@acme.example", "--role", "admin"]))
            .contains("not found")
    );
}

#[tokio::test]
async fn demo_needs_no_configuration_and_prints_a_working_portal_login() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Server::spawn(
        Command::new(bin())
            .args(["demo", "--bind", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("CHATVAULT_MASTER_KEY")
            .env_remove("CHATVAULT_MASTER_KEY_FILE")
            .env_remove("CHATVAULT_DATA_DIR")
            .env_remove("CHATVAULT_LLM_BASE_URL")
            .stderr(Stdio::piped()),
    );
    let addr = demo.addr.clone();
    let mut stderr = BufReader::new(demo.child.stderr.take().unwrap()).lines();
    let portal = stderr
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("portal: "))
        .expect("a portal line");
    // Keep draining the server's stderr so its log writes never hit a closed pipe.
    std::thread::spawn(move || stderr.for_each(drop));
    let password = portal
        .split("one-time password: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(mode(&dir.path().join("tenants/demo-master.key")), 0o600);

    let page = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/widget.js") && page.contains("data-key=\"wk_"),
        "the sample page embeds the widget"
    );
    let login = reqwest::Client::new()
        .post(format!("http://{addr}/v1/session"))
        .json(&serde_json::json!({"tenant": "demo", "email": "owner@demo.example", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(
        login.json::<Value>().await.unwrap()["must_change_password"],
        true
    );
    demo.child.kill().unwrap();
    demo.child.wait().unwrap();
}

#[test]
fn the_initial_retention_window_comes_from_configuration() {
    let cli = Cli::new();
    let policy = |id: &str| {
        cli.json(&["policy-snippet", id])["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    cli.json(&["tenant", "create", "plain", "--origin", "https://a.example"]);
    assert!(policy("plain").contains("30 days"), "{}", policy("plain"));
    cli.json(&[
        "tenant",
        "create",
        "short",
        "--origin",
        "https://a.example",
        "--retention-days",
        "7",
    ]);
    assert!(policy("short").contains("7 days"), "{}", policy("short"));
    let out = Command::new(bin())
        .args([
            "tenant",
            "create",
            "env",
            "--origin",
            "https://a.example",
            "--json",
            "--data-dir",
        ])
        .arg(cli.data_dir())
        .env("CHATVAULT_MASTER_KEY", &cli.master_key)
        .env("CHATVAULT_DEFAULT_RETENTION_DAYS", "90")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(policy("env").contains("90 days"), "{}", policy("env"));
    assert!(
        error_line(&cli.run(&[
            "tenant",
            "create",
            "bad",
            "--origin",
            "https://a.example",
            "--retention-days",
            "99999"
        ]))
        .contains("retention_days")
    );
}
