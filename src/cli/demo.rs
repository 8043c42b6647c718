//! `chatvault demo`: zero configuration. Creates `./tenants` with a demo master key file, a
//! demo tenant whose origin is the demo server itself, and serves its sample page at `/`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use clap::Args;

use super::GlobalArgs;
use super::serve::{LlmArgs, ServeArgs, bind, serve_until_signal};
use crate::catalog::tenants;
use crate::crypto::{MasterKey, MasterKeySource};
use crate::datadir::DataDir;
use crate::domain::{Origin, TenantId};
use crate::error::Result;
use crate::store::Store;

/// The demo tenant's id.
pub const DEMO_TENANT: &str = "demo";
const DEMO_KEY_FILE: &str = "demo-master.key";

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    #[command(flatten)]
    pub llm: LlmArgs,
}

pub async fn run(global: &GlobalArgs, args: DemoArgs) -> Result<()> {
    let dir = DataDir::open(&global.data_dir)?;
    let master = demo_master_key(global, &dir)?;
    let serve = ServeArgs {
        bind: Some(args.bind),
        llm: args.llm,
        max_open_tenants: Some(64),
        handshakes_per_minute: Some(120),
        ..ServeArgs::default()
    };
    let mut config = serve.config(global);
    config.demo = true;
    let store = Store::open(dir, &master, config.max_open_tenants)?;
    let listener = bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let origins = demo_origins(addr)?;
    ensure_demo_tenant(&store, &origins).await?;
    super::demo_docs::seed(&store, &TenantId::parse(DEMO_TENANT)?).await?;
    let backend = if config.llm.base_url.is_some() {
        "your configured LLM"
    } else {
        "the built-in offline responder (no LLM configured)"
    };
    eprintln!(
        "chatvault demo: tenant '{DEMO_TENANT}', data in {}, replies from {backend}",
        global.data_dir.display()
    );
    eprintln!(
        "demo page: {}/  (open it in a browser and press the chat button)",
        origins[0]
    );
    let (email, password) = demo_portal_login(&store).await?;
    eprintln!(
        "portal: {}/portal  tenant: {DEMO_TENANT}  e-mail: {email}  one-time password: {password}",
        origins[0]
    );
    serve_until_signal(store, config, listener).await
}

/// The demo owner's portal login: a fresh one-time password at every start (only its hash is kept).
async fn demo_portal_login(store: &Store) -> Result<(String, String)> {
    use crate::catalog::users::{self, Role};
    let id = TenantId::parse(DEMO_TENANT)?;
    let email = "owner@demo.example".to_owned();
    let password = users::generate_password();
    let plain = password.clone();
    let hash = crate::store::blocking(move || users::hash_password(&plain)).await?;
    let address = email.clone();
    store
        .catalog
        .call(move |c| {
            if !users::reset_password(c, &id, &address, &hash)? {
                users::insert(c, &id, &address, Role::Owner, &hash)?;
            }
            Ok(())
        })
        .await?;
    Ok((email, password))
}

/// The operator's key if one is configured, else the demo key file (created 0600 on first run).
fn demo_master_key(global: &GlobalArgs, dir: &DataDir) -> Result<MasterKey> {
    if global.master_key_file.is_some() || std::env::var_os("CHATVAULT_MASTER_KEY").is_some() {
        return MasterKey::load(&global.master_key_source());
    }
    let path = dir.root().join(DEMO_KEY_FILE);
    if !path.exists() {
        let key = MasterKey::generate();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(file, "{}", key.to_hex())?;
    }
    eprintln!(
        "WARNING: demo mode keeps its master key in {} next to the data. This is for demos only; \
         in production pass --master-key-file or CHATVAULT_MASTER_KEY and keep the key elsewhere.",
        path.display()
    );
    MasterKey::load(&MasterKeySource::File(path))
}

fn demo_origins(addr: std::net::SocketAddr) -> Result<Vec<Origin>> {
    let mut origins = vec![Origin::parse(&format!("http://{addr}"))?];
    if addr.ip().is_loopback() {
        origins.push(Origin::parse(&format!("http://localhost:{}", addr.port()))?);
    }
    Ok(origins)
}

async fn ensure_demo_tenant(store: &Store, origins: &[Origin]) -> Result<()> {
    let id = TenantId::parse(DEMO_TENANT)?;
    let probe = id.clone();
    if !store
        .catalog
        .call(move |c| tenants::exists(c, &probe))
        .await?
    {
        store
            .create_tenant(&id, "Acme Outdoor Supply (demo)", origins, "demo")
            .await?;
        return Ok(());
    }
    // The port may differ from the last run; the demo page must stay an allowed origin.
    let origins = origins.to_vec();
    store
        .catalog
        .call(move |c| tenants::replace_origins(c, &id, &origins))
        .await
}
