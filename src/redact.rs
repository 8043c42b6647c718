//! PII redaction: a pure, regex-free scanner that replaces e-mail addresses, phone numbers,
//! payment card numbers (Luhn-checked), IBANs (mod-97 checked), API-key-like secrets and IP
//! addresses with typed placeholders (`[email]`, `[phone]`, `[card]`, `[iban]`, `[secret]`,
//! `[ip]`). Checksums and shape rules keep order numbers, dates, prices and versions intact.
//!
//! Every matcher starts only at a word boundary and looks at a bounded number of bytes, so the
//! scan is linear in the text. All patterns are ASCII; other characters pass through untouched.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

mod matchers;

/// Where a tenant's redaction applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Redaction {
    #[default]
    Off,
    /// Only the text sent to the model is redacted; the stored conversation keeps it.
    BeforeLlm,
    /// The stored conversation is redacted; the model still sees the visitor's new turn.
    BeforeStore,
    Both,
}

impl Redaction {
    pub fn before_llm(self) -> bool {
        matches!(self, Redaction::BeforeLlm | Redaction::Both)
    }

    pub fn before_store(self) -> bool {
        matches!(self, Redaction::BeforeStore | Redaction::Both)
    }

    /// `text` as it may be stored under this setting.
    pub fn for_store(self, text: &str) -> Cow<'_, str> {
        if self.before_store() {
            redact(text)
        } else {
            Cow::Borrowed(text)
        }
    }

    /// `text` as it may be sent to the model under this setting.
    pub fn for_llm(self, text: &str) -> Cow<'_, str> {
        if self.before_llm() {
            redact(text)
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// Replaces every recognised piece of personal data in `text` with its placeholder.
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match matchers::match_at(bytes, i) {
            Some((end, placeholder)) => {
                out.push_str(&text[copied..i]);
                out.push_str(placeholder);
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
