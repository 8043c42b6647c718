//! A tenant's settings: limits, prompt, model, retention. Stored as JSON in the catalog so new
//! fields need no migration; unknown or missing fields fall back to defaults.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::redact::Redaction;

/// Settings a customer can change (`PATCH /v1/settings`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(default)]
pub struct TenantSettings {
    pub system_prompt: String,
    /// Model name sent upstream; `None` uses the server's configured model.
    pub model: Option<String>,
    /// Conversations older than this many days are deleted; 0 keeps them until deleted.
    pub retention_days: u32,
    pub max_message_chars: u32,
    /// Per widget connection.
    pub messages_per_minute: u32,
    /// Across all of the tenant's connections.
    pub tenant_messages_per_minute: u32,
    /// Tokens in + out per UTC day; 0 means no budget.
    pub daily_token_budget: u64,
    /// Upper bound on one reply.
    pub max_reply_tokens: u32,
    /// Visitor messages per UTC day across the tenant; 0 means no budget.
    pub daily_message_budget: u64,
    /// Visitor messages one conversation may hold; further submits get `quota_exceeded`.
    pub max_turns_per_conversation: u32,
    /// The content-safety floor.
    pub safety: crate::safety::SafetySettings,
    /// Where personal data in messages is replaced by placeholders: `off`, `before_llm`,
    /// `before_store` or `both`.
    pub redaction: Redaction,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            system_prompt:
                "You are a helpful assistant for this website. Answer briefly and politely.".into(),
            model: None,
            retention_days: 30,
            max_message_chars: 2000,
            messages_per_minute: 10,
            tenant_messages_per_minute: 300,
            daily_token_budget: 200_000,
            max_reply_tokens: 512,
            daily_message_budget: 0,
            max_turns_per_conversation: 200,
            safety: crate::safety::SafetySettings::default(),
            redaction: Redaction::Off,
        }
    }
}

/// Bounds every setting must stay within.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 8000;
pub const MAX_MESSAGE_CHARS_LIMIT: u32 = 16_000;

impl TenantSettings {
    pub fn validate(&self) -> Result<()> {
        let problem = if self.system_prompt.chars().count() > MAX_SYSTEM_PROMPT_CHARS {
            Some(format!(
                "system_prompt is longer than {MAX_SYSTEM_PROMPT_CHARS} characters"
            ))
        } else if !(1..=MAX_MESSAGE_CHARS_LIMIT).contains(&self.max_message_chars) {
            Some(format!(
                "max_message_chars must be between 1 and {MAX_MESSAGE_CHARS_LIMIT}"
            ))
        } else if !(1..=600).contains(&self.messages_per_minute) {
            Some("messages_per_minute must be between 1 and 600".into())
        } else if !(1..=100_000).contains(&self.tenant_messages_per_minute) {
            Some("tenant_messages_per_minute must be between 1 and 100000".into())
        } else if !(1..=100_000).contains(&self.max_turns_per_conversation) {
            Some("max_turns_per_conversation must be between 1 and 100000".into())
        } else if !(1..=32_000).contains(&self.max_reply_tokens) {
            Some("max_reply_tokens must be between 1 and 32000".into())
        } else if self.retention_days > 3650 {
            Some("retention_days must be at most 3650".into())
        } else if self
            .model
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.len() > 200)
        {
            Some("model must be 1-200 characters".into())
        } else {
            None
        };
        match problem {
            Some(message) => Err(Error::invalid("invalid_settings", message)),
            None => Ok(()),
        }
    }
}
