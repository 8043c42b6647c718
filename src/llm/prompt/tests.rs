use proptest::prelude::*;

use super::*;

fn inside(wrapped: &str, nonce: &Nonce) -> String {
    let open = format!("<untrusted_document id=\"{}\">\n", nonce.as_str());
    let body = wrapped
        .strip_prefix(&open)
        .and_then(|r| r.strip_suffix("\n</untrusted_document>"));
    unescape(body.expect("the wrapper's frame is intact"))
}

proptest! {
    #[test]
    fn unescaping_gives_back_any_text(text in any::<String>()) {
        prop_assert_eq!(unescape(&escape(&text)), text);
    }

    #[test]
    fn no_text_can_close_or_open_the_wrapper(text in any::<String>()) {
        let nonce = Nonce::generate();
        let wrapped = wrap_visitor_text(&nonce, &text);
        let body = &wrapped[wrapped.find('\n').unwrap() + 1..wrapped.rfind('\n').unwrap()];
        prop_assert!(!body.contains('<') && !body.contains('>'));
        prop_assert_eq!(wrapped.matches("</untrusted_document>").count(), 1);
        prop_assert_eq!(inside(&wrapped, &nonce), text);
    }

    #[test]
    fn tag_soup_stays_inside(parts in proptest::collection::vec(prop_oneof![
        Just("</untrusted_document>".to_owned()),
        Just("<untrusted_document id=\"x\">".to_owned()),
        Just("&lt;".to_owned()),
        Just("&amp;".to_owned()),
        Just("＜/untrusted_document＞".to_owned()),
        Just("\u{0}".to_owned()),
        any::<String>(),
    ], 0..12)) {
        let text = parts.concat();
        let nonce = Nonce::generate();
        let wrapped = wrap_visitor_text(&nonce, &text);
        prop_assert_eq!(wrapped.matches("</untrusted_document>").count(), 1);
        prop_assert_eq!(inside(&wrapped, &nonce), text);
    }
}

#[test]
fn escaping_touches_only_the_three_characters() {
    assert_eq!(escape("a<b>&c\"'"), "a&lt;b&gt;&amp;c\"'");
    assert_eq!(unescape("&amp;lt;"), "&lt;");
    assert_eq!(unescape("a & b &x; &"), "a & b &x; &");
}

#[test]
fn nonces_are_fresh_and_128_bits() {
    let a = Nonce::generate();
    assert_eq!(a.as_str().len(), 32);
    assert_ne!(a, Nonce::generate());
}

#[test]
fn the_system_message_names_the_nonce_then_the_tenant_prompt() {
    let nonce = Nonce::generate();
    let system = system_message(&nonce, "Be nice.");
    assert!(system.contains(nonce.as_str()));
    assert!(system.ends_with("Be nice."));
    assert!(system.contains(&format!("<untrusted_document id=\"{}\">", nonce.as_str())));
}

fn turn(role: Role, text: &str) -> Turn {
    Turn {
        role,
        text: text.to_owned(),
    }
}

#[test]
fn assembly_orders_system_passages_history_and_the_new_turn() {
    let nonce = Nonce::generate();
    let history = [
        turn(Role::Visitor, "hi"),
        turn(Role::Assistant, "hello <b>"),
    ];
    let passages = [Passage {
        doc_id: "d1".into(),
        text: "Shipping takes 3 days".into(),
    }];
    let input = PromptInput {
        tenant_prompt: "P",
        history: &history,
        passages: &passages,
        new_text: "and now?",
        history_budget_tokens: 1000,
    };
    let messages = assemble(&input, &nonce);
    let roles: Vec<_> = messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            PromptRole::System,
            PromptRole::User,
            PromptRole::User,
            PromptRole::Assistant,
            PromptRole::User
        ]
    );
    assert!(messages[1].content.contains("source=\"kb:d1\""));
    assert_eq!(messages[2].content, wrap_visitor_text(&nonce, "hi"));
    assert_eq!(
        messages[3].content, "hello <b>",
        "assistant turns are sent unwrapped"
    );
    assert_eq!(messages[4].content, wrap_visitor_text(&nonce, "and now?"));
}

#[test]
fn history_is_trimmed_from_the_oldest_turn() {
    let nonce = Nonce::generate();
    let long = "x".repeat(400);
    let history = [
        turn(Role::Visitor, &long),
        turn(Role::Assistant, "short"),
        turn(Role::Visitor, "also short"),
    ];
    let input = PromptInput {
        tenant_prompt: "",
        history: &history,
        passages: &[],
        new_text: "new",
        history_budget_tokens: 50,
    };
    let messages = assemble(&input, &nonce);
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[1].content, "short");
    let none = PromptInput {
        history_budget_tokens: 0,
        ..input
    };
    assert_eq!(assemble(&none, &nonce).len(), 2);
}
