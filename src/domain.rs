//! Parsed identifiers: every id that reaches a path, a query or a frame is one of these types,
//! and the only way to build one is to parse it.

use std::fmt;

use crate::crypto;
use crate::error::{Error, Result};

/// A tenant id: `^[a-z0-9][a-z0-9-]{1,62}$`, and never the name of one of our own files.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Names that would collide with the data directory's own files.
const RESERVED_TENANT_IDS: [&str; 2] = ["catalog", "keyring"];

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self> {
        let bytes = raw.as_bytes();
        let valid_len = (2..=63).contains(&bytes.len());
        let valid_first = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let valid_rest = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !(valid_len && valid_first && valid_rest) {
            return Err(Error::invalid(
                "invalid_tenant_id",
                "tenant ids are 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            ));
        }
        if RESERVED_TENANT_IDS.contains(&raw) {
            return Err(Error::invalid(
                "invalid_tenant_id",
                "that tenant id is reserved",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// `N` bytes: milliseconds since the Unix epoch (big-endian, 48 bits), then randomness.
fn time_ordered_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = crypto::random_bytes::<N>();
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $bytes:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Debug)]
        pub struct $name(String);

        impl $name {
            /// A fresh id: the time in ms (48 bits) followed by random bytes from the OS CSPRNG.
            /// Later ids sort later, so the indexes over them grow at their right edge, a few
            /// hot pages per commit, instead of dirtying a random page each.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "{}"), hex::encode(time_ordered_bytes::<$bytes>())))
            }

            /// Accepts exactly the shape `generate` produces.
            pub fn parse(raw: &str) -> Option<Self> {
                let hex_part = raw.strip_prefix($prefix)?;
                let well_formed = hex_part.len() == 2 * $bytes
                    && hex_part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                well_formed.then(|| Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A conversation inside one tenant file.
    ConversationId, "c_", 16
);
prefixed_id!(
    /// A stored message (visitor or assistant).
    MessageId, "m_", 12
);
/// The public key a widget names its tenant with: `wk_<tenant>.<32 hex>`. The tenant in front
/// lets a load balancer route the socket to the tenant's node without a lookup (see
/// [`routing_tenant`]); keys minted before that prefix existed (`wk_<32 hex>`) still parse.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct WidgetKey(String);

impl WidgetKey {
    /// A fresh key for `tenant` from the OS CSPRNG.
    pub fn generate(tenant: &TenantId) -> Self {
        Self(format!(
            "wk_{}",
            routed(tenant, &hex::encode(crypto::random_bytes::<16>()))
        ))
    }

    /// Accepts exactly the shapes `generate` produces, now or before tenant prefixes.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix("wk_")?;
        let (_, random) = split_routed(body)?;
        is_lower_hex(random, 32).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WidgetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `<tenant>.<random>`: the shape of every public credential a tenant hands out (widget keys, API
/// key ids, portal session cookies), so the tenant can be read off a request without a lookup.
pub fn routed(tenant: &TenantId, random: &str) -> String {
    format!("{tenant}.{random}")
}

/// Splits `<tenant>.<random>` (or a bare `<random>` from before tenant prefixes) into its parts.
/// The tenant part is only a routing hint: the credential is still looked up and checked whole.
pub fn split_routed(raw: &str) -> Option<(Option<TenantId>, &str)> {
    match raw.split_once('.') {
        Some((tenant, random)) => Some((Some(TenantId::parse(tenant).ok()?), random)),
        None => Some((None, raw)),
    }
}

fn is_lower_hex(raw: &str, len: usize) -> bool {
    raw.len() == len && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A web origin (scheme, host, port) in its canonical serialization, e.g. `https://acme.com`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Origin(String);

impl Origin {
    /// Accepts `http(s)://host[:port]` with at most a trailing `/`; no path, query or userinfo.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "invalid_origin",
                format!("{raw:?} is not an origin like https://example.com"),
            )
        };
        let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        if !plain {
            return Err(bad());
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client's id for one submitted message: 1-64 of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SubmitId(String);

impl SubmitId {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubmitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who wrote a message.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Visitor,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Visitor => "visitor",
            Role::Assistant => "assistant",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "visitor" => Some(Role::Visitor),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widget_keys_carry_their_tenant_and_old_keys_still_parse() {
        let tenant = TenantId::parse("acme-shop").unwrap();
        let key = WidgetKey::generate(&tenant);
        assert!(key.as_str().starts_with("wk_acme-shop."));
        assert_eq!(WidgetKey::parse(key.as_str()), Some(key.clone()));
        let body = key.as_str().strip_prefix("wk_").unwrap();
        assert_eq!(split_routed(body).unwrap().0, Some(tenant));
        let legacy = format!("wk_{}", "ab".repeat(16));
        assert!(WidgetKey::parse(&legacy).is_some());
        for bad in [
            "wk_",
            "wk_acme.",
            "wk_.0123456789abcdef0123456789abcdef",
            "wk_Acme.0123456789abcdef0123456789abcdef",
            "wk_acme.0123456789ABCDEF0123456789abcdef",
            "wk_catalog.0123456789abcdef0123456789abcdef",
            "wk_a.b.0123456789abcdef0123456789abcdef",
            "wk_../../etc",
        ] {
            assert_eq!(WidgetKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tenant_ids_that_could_escape_or_collide_are_refused() {
        for bad in [
            "",
            "a",
            "../x",
            "A",
            "Acme",
            "-acme",
            "acme/x",
            "acme.db",
            "acme x",
            "catalog",
            "keyring",
            "ac\0me",
            &"a".repeat(64),
            &"a".repeat(200),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ordinary_tenant_ids_parse() {
        for good in ["acme", "a1", "0-shop", "my-tenant-42", &"a".repeat(63)] {
            assert_eq!(TenantId::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn generated_ids_sort_by_creation_time_and_stay_unpredictable() {
        let first = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (second, third) = (MessageId::generate(), MessageId::generate());
        assert!(first.as_str() < second.as_str());
        // 48 random bits after the time: two ids from the same millisecond still differ.
        assert_ne!(second, third);
        assert_eq!(second.as_str().len(), "m_".len() + 24);
        let (a, b) = (ConversationId::generate(), ConversationId::generate());
        assert_ne!(a.as_str()[14..], b.as_str()[14..]);
    }

    #[test]
    fn generated_ids_round_trip_and_foreign_shapes_do_not() {
        let id = ConversationId::generate();
        assert_eq!(ConversationId::parse(id.as_str()), Some(id.clone()));
        assert!(ConversationId::parse("c_../../etc").is_none());
        assert!(ConversationId::parse(&id.as_str().to_uppercase()).is_none());
        assert!(WidgetKey::parse(id.as_str()).is_none());
    }

    #[test]
    fn origins_compare_by_scheme_host_and_port() {
        let acme = Origin::parse("https://acme.com").unwrap();
        assert_eq!(Origin::parse("https://acme.com/").unwrap(), acme);
        assert_eq!(Origin::parse("https://ACME.com:443").unwrap(), acme);
        for other in [
            "http://acme.com",
            "https://acme.com.evil.net",
            "https://acme.com:8443",
            "https://www.acme.com",
        ] {
            assert_ne!(Origin::parse(other).unwrap(), acme, "{other}");
        }
        for bad in [
            "acme.com",
            "null",
            "",
            "ftp://acme.com",
            "https://acme.com/path",
            "https://u:p@acme.com",
            "https://acme.com?x=1",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_parsed_tenant_id_is_always_a_safe_file_name(raw in ".{0,80}") {
            if let Ok(id) = TenantId::parse(&raw) {
                let s = id.as_str();
                proptest::prop_assert!((2..=63).contains(&s.len()));
                proptest::prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                proptest::prop_assert!(!s.starts_with('-') && !s.contains("..") && !s.contains('/'));
            }
        }

        #[test]
        fn tenant_ids_of_the_allowed_shape_parse(raw in "[a-z0-9][a-z0-9-]{1,62}") {
            proptest::prop_assume!(raw != "catalog" && raw != "keyring");
            let id = TenantId::parse(&raw).unwrap();
            proptest::prop_assert_eq!(id.as_str(), raw.as_str());
        }

        #[test]
        fn keys_and_ids_parse_only_their_own_shape(raw in ".{0,80}") {
            for parsed in [WidgetKey::parse(&raw).map(|k| k.to_string()), ConversationId::parse(&raw).map(|c| c.to_string())].into_iter().flatten() {
                proptest::prop_assert_eq!(&parsed, &raw);
                proptest::prop_assert!(parsed.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            }
            if let Some(id) = SubmitId::parse(&raw) {
                proptest::prop_assert!(id.as_str().len() <= 64);
            }
        }
    }

    #[test]
    fn submit_ids_are_bounded_and_plain() {
        assert!(SubmitId::parse("abc_DEF-123").is_some());
        assert!(SubmitId::parse(&"x".repeat(64)).is_some());
        for bad in ["", "a b", "é", "a/b", &"x".repeat(65)] {
            assert!(SubmitId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
