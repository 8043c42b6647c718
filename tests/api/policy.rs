//! `chatvault policy-snippet ID` states the tenant's live settings.

use chatvault::catalog::settings::TenantSettings;
use chatvault::catalog::tenants;
use chatvault::crypto::MasterKey;
use chatvault::datadir::DataDir;
use chatvault::domain::TenantId;
use chatvault::redact::Redaction;
use chatvault::store::Store;

use crate::cli::{Cli, error_line};

async fn set(cli: &Cli, retention_days: u32, redaction: Redaction) {
    let master = MasterKey::from_hex(&cli.master_key).unwrap();
    let store = Store::open(DataDir::open(cli.data_dir()).unwrap(), &master, 1).unwrap();
    let settings = TenantSettings {
        retention_days,
        redaction,
        ..TenantSettings::default()
    };
    let id = TenantId::parse("acme").unwrap();
    store
        .catalog
        .call(move |c| tenants::update_settings(c, &id, "Acme Shop", &settings))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_policy_snippet_follows_the_tenants_settings() {
    let cli = Cli::new();
    cli.json(&[
        "tenant",
        "create",
        "acme",
        "--origin",
        "https://acme.example",
    ]);
    set(&cli, 14, Redaction::Both).await;
    let snippet = cli.json(&["policy-snippet", "acme"]);
    assert_eq!(snippet["tenant"], "acme");
    let text = snippet["text"].as_str().unwrap();
    for phrase in [
        "Acme Shop",
        "no cookies",
        "AES-256",
        "14 days after their last message",
        "Before your messages are stored or sent to the AI model",
        "erase",
    ] {
        assert!(text.contains(phrase), "{phrase:?} missing from: {text}");
    }

    set(&cli, 0, Redaction::Off).await;
    let text = cli.json(&["policy-snippet", "acme"])["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("kept until Acme Shop deletes them"), "{text}");
    assert!(
        !text.contains("14 days") && !text.contains("placeholders"),
        "{text}"
    );

    assert!(error_line(&cli.run(&["policy-snippet", "nobody"])).contains("not found"));
}
