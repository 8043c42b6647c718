//! `chatvault policy-snippet ID`: the privacy-policy paragraph for the tenant's live settings.

use super::{GlobalArgs, Output};
use crate::domain::TenantId;
use crate::error::Result;

pub async fn run(global: &GlobalArgs, out: &Output, id: &str) -> Result<()> {
    let id = TenantId::parse(id)?;
    let store = global.open_store(1)?;
    let tenant = store.tenant(&id).await?;
    let text = crate::policy::snippet(&tenant);
    out.emit(
        serde_json::json!({ "tenant": id.as_str(), "text": text }),
        || text.clone(),
    );
    Ok(())
}
