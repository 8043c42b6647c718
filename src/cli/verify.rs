//! `chatvault verify`: integrity and cipher integrity of every file; exits non-zero when any
//! file fails.

use super::{GlobalArgs, Output};
use crate::backup;
use crate::error::{Error, Result};

pub async fn run(global: &GlobalArgs, out: &Output) -> Result<()> {
    let (store, master) = global.open_store_with_key(4)?;
    let report = backup::verify(&store, &master).await?;
    let bad = report.files.iter().filter(|f| !f.ok).count();
    out.emit(serde_json::to_value(&report).unwrap_or_default(), || {
        report
            .files
            .iter()
            .map(|f| match &f.error {
                None => format!("ok\t{}", f.file),
                Some(e) => format!("FAILED\t{}\t{e}", f.file),
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    if bad > 0 {
        return Err(Error::Unavailable(format!(
            "{bad} file(s) failed verification"
        )));
    }
    Ok(())
}
