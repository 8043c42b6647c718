//! `chatvault docs add ID FILE…` and `chatvault docs list ID`: the tenant's knowledge base from
//! the command line. The format follows the file extension (`.md`/`.markdown`, `.html`/`.htm`,
//! anything else is plain text); the title is the file name unless `--title` is given.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;

use super::{GlobalArgs, Output};
use crate::db::format_time;
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::knowledge::{self, Format, Upload, ops};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// Add documents (text, Markdown or HTML files) to a tenant's knowledge base.
    Add {
        id: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Title (only with a single file; default: the file name).
        #[arg(long)]
        title: Option<String>,
        /// Source URL shown to visitors (only with a single file).
        #[arg(long)]
        url: Option<String>,
    },
    /// List a tenant's documents.
    List { id: String },
}

const ACTOR: &str = "cli";

pub async fn run(global: &GlobalArgs, out: &Output, cmd: DocsCommand) -> Result<()> {
    match cmd {
        DocsCommand::Add {
            id,
            files,
            title,
            url,
        } => {
            let id = TenantId::parse(&id)?;
            if files.len() > 1 && (title.is_some() || url.is_some()) {
                return Err(Error::invalid(
                    "invalid_args",
                    "--title and --url need a single file",
                ));
            }
            let store = global.open_store(4)?;
            store.dir.ensure_no_server()?;
            store.tenant(&id).await?;
            let mut added = Vec::new();
            for file in &files {
                let upload = read_upload(file, title.clone(), url.clone())?;
                let doc = ops::add(&store, &id, ACTOR, upload).await?;
                added.push(json!({ "id": doc.id, "title": doc.title, "passages": doc.passages, "file": file.display().to_string() }));
            }
            out.emit(json!({ "tenant": id.as_str(), "documents": added }), || {
                added
                    .iter()
                    .map(|d| {
                        format!(
                            "added {} {:?} ({} passages) from {}",
                            d["id"].as_str().unwrap_or_default(),
                            d["title"].as_str().unwrap_or_default(),
                            d["passages"],
                            d["file"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        DocsCommand::List { id } => {
            let id = TenantId::parse(&id)?;
            let store = global.open_store(4)?;
            store.tenant(&id).await?;
            let docs = ops::list(&store, &id).await?;
            let items: Vec<_> = docs
                .iter()
                .map(|d| json!({ "id": d.id, "title": d.title, "url": d.url, "format": d.format, "passages": d.passages, "chars": d.chars, "created_at": format_time(d.created_at) }))
                .collect();
            out.emit(json!({ "tenant": id.as_str(), "documents": items }), || {
                if docs.is_empty() {
                    return format!("{id} has no documents");
                }
                docs.iter()
                    .map(|d| {
                        format!(
                            "{}  {:>4} passages  {}  {}",
                            d.id,
                            d.passages,
                            format_time(d.created_at),
                            d.title
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

fn read_upload(file: &Path, title: Option<String>, url: Option<String>) -> Result<Upload> {
    let size = std::fs::metadata(file)?.len();
    if size > knowledge::MAX_DOCUMENT_BYTES as u64 {
        return Err(knowledge::too_large());
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::invalid("invalid_document", format!("{}: {e}", file.display())))?;
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let format = match extension.as_str() {
        "md" | "markdown" => Format::Markdown,
        "html" | "htm" => Format::Html,
        _ => Format::Text,
    };
    let title = title.unwrap_or_else(|| {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "document".into())
    });
    Ok(Upload {
        title,
        text,
        format,
        url,
    })
}
