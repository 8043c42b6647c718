//! The content-safety floor, optional per tenant: visitor text (and optionally the reply) is
//! classified by an OpenAI-compatible moderation endpoint or a small built-in floor. A narrow set
//! of categories the tenant chose is blocked (`content_blocked`); everything else passes with
//! advisory flags stored beside the message, so the customer sees the risk and decides. When the
//! classifier is unavailable the tenant's choice applies: fail closed (refuse) or fail open (pass,
//! flagged `moderation_unavailable`) — never a silent pass.

use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How a tenant's messages are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SafetyMode {
    #[default]
    Off,
    Builtin,
    Endpoint,
}

/// The tenant's safety settings (`safety` in the settings API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SafetySettings {
    pub mode: SafetyMode,
    /// Categories refused outright; all others are advisory flags.
    pub block: Vec<String>,
    /// When the classifier cannot be reached: refuse (true) or pass flagged (false).
    pub fail_closed: bool,
    /// Also check replies (after they stream; a blocked reply is withheld and not stored).
    pub check_replies: bool,
}

impl Default for SafetySettings {
    fn default() -> Self {
        Self {
            mode: SafetyMode::Off,
            block: vec!["sexual/minors".into()],
            fail_closed: true,
            check_replies: false,
        }
    }
}

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass {
        flags: Vec<String>,
    },
    Block {
        category: String,
    },
    /// The classifier failed and the tenant fails closed.
    Unavailable,
}

/// Flag recorded when a fail-open tenant's check could not run.
pub const UNAVAILABLE_FLAG: &str = "moderation_unavailable";

/// The classifiers this server has.
#[derive(Clone, Default)]
pub struct Safety {
    endpoint: Option<Arc<Endpoint>>,
}

struct Endpoint {
    client: Client<OpenAIConfig>,
    model: String,
}

impl Safety {
    /// With an OpenAI-compatible moderation endpoint at `base_url` (`POST {base}/moderations`).
    pub fn with_endpoint(base_url: &str, api_key: Option<String>, model: &str) -> Self {
        let mut config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        if let Some(key) = api_key {
            config = config.with_api_key(key);
        }
        let http = crate::llm::upstream_http()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            endpoint: Some(Arc::new(Endpoint {
                client: Client::with_config(config).with_http_client(http),
                model: model.to_owned(),
            })),
        }
    }

    /// Classifies `text` under the tenant's settings.
    pub async fn check(&self, settings: &SafetySettings, text: &str) -> Verdict {
        let flagged = match settings.mode {
            SafetyMode::Off => return Verdict::Pass { flags: Vec::new() },
            SafetyMode::Builtin => Ok(builtin_flags(text)),
            SafetyMode::Endpoint => match &self.endpoint {
                Some(endpoint) => endpoint.flags(text).await,
                None => Err(()),
            },
        };
        match flagged {
            Ok(flags) => decide(settings, flags),
            Err(()) if settings.fail_closed => Verdict::Unavailable,
            Err(()) => Verdict::Pass {
                flags: vec![UNAVAILABLE_FLAG.to_owned()],
            },
        }
    }
}

fn decide(settings: &SafetySettings, flags: Vec<String>) -> Verdict {
    match flags.iter().find(|f| settings.block.contains(f)) {
        Some(category) => Verdict::Block {
            category: category.clone(),
        },
        None => Verdict::Pass { flags },
    }
}

impl Endpoint {
    async fn flags(&self, text: &str) -> Result<Vec<String>, ()> {
        let request = json!({ "model": self.model, "input": text });
        let response: Value = match self.client.moderations().create_byot(request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(error = %e, "moderation endpoint failed");
                return Err(());
            }
        };
        let categories = response["results"][0]["categories"].as_object().ok_or(())?;
        Ok(categories
            .iter()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

/// A deliberately small floor: a few unambiguous phrases per category, matched on normalised
/// text. It catches the obvious; for real coverage use an endpoint.
pub fn builtin_flags(text: &str) -> Vec<String> {
    const RULES: &[(&str, &[&str])] = &[
        (
            "self-harm/intent",
            &[
                "kill myself",
                "end my life",
                "want to die",
                "commit suicide",
            ],
        ),
        (
            "harassment/threatening",
            &[
                "i will kill you",
                "i'm going to kill you",
                "im going to kill you",
            ],
        ),
        (
            "illicit/violent",
            &["how to make a bomb", "build a pipe bomb"],
        ),
        ("sexual/minors", &["child porn", "underage nudes"]),
    ];
    let normalised = text
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('’', "'");
    RULES
        .iter()
        .filter(|(_, phrases)| phrases.iter().any(|p| normalised.contains(p)))
        .map(|(category, _)| (*category).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: SafetyMode, block: &[&str], fail_closed: bool) -> SafetySettings {
        SafetySettings {
            mode,
            block: block.iter().map(|s| (*s).to_owned()).collect(),
            fail_closed,
            check_replies: false,
        }
    }

    #[tokio::test]
    async fn off_passes_everything_unflagged() {
        let verdict = Safety::default()
            .check(&settings(SafetyMode::Off, &[], true), "I want to die")
            .await;
        assert_eq!(verdict, Verdict::Pass { flags: vec![] });
    }

    #[tokio::test]
    async fn builtin_blocks_only_the_configured_categories_and_flags_the_rest() {
        let s = settings(SafetyMode::Builtin, &["illicit/violent"], true);
        let safety = Safety::default();
        assert_eq!(
            safety.check(&s, "Tell me HOW TO  make a bomb").await,
            Verdict::Block {
                category: "illicit/violent".into()
            }
        );
        assert_eq!(
            safety.check(&s, "some days I want to die").await,
            Verdict::Pass {
                flags: vec!["self-harm/intent".into()]
            }
        );
        assert_eq!(
            safety.check(&s, "where is my order #4411?").await,
            Verdict::Pass { flags: vec![] }
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_closed_or_open_as_chosen_never_silently() {
        let safety = Safety::with_endpoint("http://127.0.0.1:9/v1", None, "m");
        assert_eq!(
            safety
                .check(&settings(SafetyMode::Endpoint, &[], true), "hi")
                .await,
            Verdict::Unavailable
        );
        assert_eq!(
            safety
                .check(&settings(SafetyMode::Endpoint, &[], false), "hi")
                .await,
            Verdict::Pass {
                flags: vec![UNAVAILABLE_FLAG.into()]
            }
        );
        let none = Safety::default();
        assert_eq!(
            none.check(&settings(SafetyMode::Endpoint, &[], true), "hi")
                .await,
            Verdict::Unavailable,
            "no endpoint configured"
        );
    }
}
