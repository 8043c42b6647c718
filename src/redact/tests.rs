use super::*;

fn r(text: &str) -> String {
    redact(text).into_owned()
}

#[test]
fn emails_are_redacted() {
    assert_eq!(
        r("mail me at jane.doe+shop@example.co.uk."),
        "mail me at [email]."
    );
    assert_eq!(r("<a.b@mail-host.example.org>"), "<[email]>");
}

#[test]
fn card_numbers_that_pass_luhn_are_redacted() {
    assert_eq!(
        r("card 4111 1111 1111 1111 exp 12/27"),
        "card [card] exp 12/27"
    );
    assert_eq!(r("5500-0000-0000-0004"), "[card]");
    assert_eq!(
        r("pay with 378282246310005 please"),
        "pay with [card] please"
    );
}

#[test]
fn ibans_with_a_valid_checksum_are_redacted() {
    assert_eq!(
        r("IBAN: DE89 3704 0044 0532 0130 00, thanks"),
        "IBAN: [iban], thanks"
    );
    assert_eq!(r("GB82WEST12345698765432"), "[iban]");
}

#[test]
fn phone_numbers_are_redacted() {
    for (text, want) in [
        ("call +49 30 1234567 today", "call [phone] today"),
        ("call +1 (415) 555-2671", "call [phone]"),
        ("(555) 123-4567", "[phone]"),
        ("555-123-4567", "[phone]"),
        ("ring 030 1234567", "ring [phone]"),
        ("0044 20 7946 0958", "[phone]"),
    ] {
        assert_eq!(r(text), want, "{text}");
    }
}

#[test]
fn secrets_are_redacted() {
    for (text, want) in [
        ("key sk-proj-abcdefghijklmnop1234 ok", "key [secret] ok"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[secret]"),
        ("AKIAIOSFODNN7EXAMPLE", "[secret]"),
        (
            "token=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "token=[secret]",
        ),
        (
            "use aZ3kP9qL2mX7vB4nR8tY1wC6dF5gH0jQ here",
            "use [secret] here",
        ),
    ] {
        assert_eq!(r(text), want, "{text}");
    }
}

#[test]
fn ip_addresses_are_redacted() {
    assert_eq!(r("from 192.168.1.20, then"), "from [ip], then");
    assert_eq!(r("v6 2001:db8::8a2e:370:7334 seen"), "v6 [ip] seen");
    assert_eq!(r("fe80::1ff:fe23:4567:890a"), "[ip]");
}

#[test]
fn order_numbers_dates_prices_and_versions_survive() {
    for text in [
        "order #100234567 shipped",
        "order 4111111111111112 (not a card: Luhn fails)",
        "ORD-2024-000123",
        "booked for 2024-05-01 at 12:30",
        "on 05.01.2024 14:30",
        "on 12/31/2025",
        "costs $1,299.99 or €25.00",
        "1299.00 EUR",
        "version 1.2.3, build 10.4.2-rc1",
        "v1.2.3.4",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "Supercalifragilisticexpialidociousandmorewordsforlength",
        "call me at 5 pm, 3 items, 12 x 4",
        "DE00 1234 5678 9012 3456 78",
        "a::b and note:: this",
        "ratio 256.300.1.1 is not an address",
    ] {
        assert_eq!(r(text), text, "{text}");
    }
}

#[test]
fn unchanged_text_is_borrowed_and_unicode_passes_through() {
    assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    assert_eq!(r("Grüße an jürgen@example.de 😀"), "Grüße an [email] 😀");
}

#[test]
fn settings_choose_where_redaction_applies() {
    let text = "jane@example.com";
    assert_eq!(Redaction::Off.for_store(text), text);
    assert_eq!(Redaction::Off.for_llm(text), text);
    assert_eq!(Redaction::BeforeLlm.for_llm(text), "[email]");
    assert_eq!(Redaction::BeforeLlm.for_store(text), text);
    assert_eq!(Redaction::BeforeStore.for_store(text), "[email]");
    assert_eq!(Redaction::BeforeStore.for_llm(text), text);
    assert_eq!(Redaction::Both.for_llm(text), "[email]");
    assert_eq!(Redaction::Both.for_store(text), "[email]");
    let parsed: Redaction = serde_json::from_str("\"before_llm\"").unwrap();
    assert_eq!(parsed, Redaction::BeforeLlm);
}

#[test]
fn long_runs_of_separators_are_left_alone() {
    let text = "a.".repeat(8000) + &"1-".repeat(8000) + &"+".repeat(100);
    assert_eq!(r(&text), text);
}
