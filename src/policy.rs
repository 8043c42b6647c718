//! The privacy-policy paragraph for a tenant, built from its live settings, so the promise a
//! customer publishes always matches what the server does.

use crate::catalog::tenants::Tenant;
use crate::redact::Redaction;

/// A ready-to-paste paragraph (plain text) describing how the tenant's chat handles data.
pub fn snippet(tenant: &Tenant) -> String {
    let name = &tenant.name;
    let settings = &tenant.settings;
    let mut text = vec![
        format!(
            "The chat assistant on this website ({name}) sets no cookies and stores nothing, \
             on our servers or in your browser, until you send your first message."
        ),
        format!(
            "When you send a message, its text, the assistant's reply and their times are \
             stored in a database file that belongs to {name} alone and is encrypted with \
             AES-256 (SQLCipher) under a key unique to it. No IP address, cookie or account is \
             stored with your conversation."
        ),
        "To write a reply, the conversation is sent to the AI model that generates it; the \
         model receives no identifier of you, only a pseudonym of the conversation."
            .to_owned(),
    ];
    text.push(redaction_sentence(settings.redaction));
    text.push(match settings.retention_days {
        0 => format!("Conversations are kept until {name} deletes them or you erase them."),
        1 => "Conversations are deleted automatically 1 day after their last message.".to_owned(),
        days => {
            format!("Conversations are deleted automatically {days} days after their last message.")
        }
    });
    text.push(
        "You can download a transcript of your conversation, or erase it at any time with the \
         erase option in the chat window: it is deleted from the live database at once. \
         Backups, where kept, may hold it until they expire."
            .to_owned(),
    );
    text.join(" ")
}

fn redaction_sentence(redaction: Redaction) -> String {
    let what = "e-mail addresses, phone numbers, payment card numbers, IBANs, secrets such as \
                API keys, and IP addresses in your messages are replaced by placeholders";
    match redaction {
        Redaction::Off => "Messages are stored and sent as you write them, so please do not \
                           share payment details or other sensitive data in the chat."
            .to_owned(),
        Redaction::BeforeLlm => format!(
            "Before your messages are sent to the AI model, {what}; the stored conversation \
             keeps them as written."
        ),
        Redaction::BeforeStore => format!("Before your messages are stored, {what}."),
        Redaction::Both => {
            format!("Before your messages are stored or sent to the AI model, {what}.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::settings::TenantSettings;

    fn tenant(retention_days: u32, redaction: Redaction) -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            origins: vec![],
            created_at: 0,
            settings: TenantSettings {
                retention_days,
                redaction,
                ..TenantSettings::default()
            },
        }
    }

    #[test]
    fn the_snippet_states_retention_and_redaction_as_configured() {
        let text = snippet(&tenant(14, Redaction::BeforeStore));
        assert!(
            text.contains("deleted automatically 14 days after"),
            "{text}"
        );
        assert!(text.contains("Before your messages are stored,"), "{text}");
        assert!(text.contains("AES-256") && text.contains("erase"), "{text}");
        assert!(text.contains("no cookies"), "{text}");

        let text = snippet(&tenant(0, Redaction::Off));
        assert!(text.contains("kept until Acme deletes them"), "{text}");
        assert!(!text.contains("automatically"), "{text}");
        assert!(text.contains("as you write them"), "{text}");

        assert!(snippet(&tenant(1, Redaction::Both)).contains("1 day after"));
        assert!(snippet(&tenant(30, Redaction::BeforeLlm)).contains("keeps them as written"));
    }
}
