//! Outgoing webhooks: `conversation.message` and `conversation.erased` events, POSTed to the
//! tenant's URL and signed with HMAC-SHA256 over `timestamp + "." + body` with the tenant's
//! secret. A bounded queue feeds one delivery task; failures retry with backoff, and every
//! delivery lands in a log the portal shows. Message text is included only if the tenant opted in.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::catalog::{Catalog, webhooks};
use crate::crypto;
use crate::db;
use crate::domain::TenantId;

/// Events waiting beyond this are dropped (and logged): a slow receiver cannot grow memory.
const QUEUE: usize = 10_000;
/// Tenants remembered as having no endpoint; beyond this, the others are looked up per event.
const UNCONFIGURED_MAX: usize = 100_000;
/// Attempts per delivery, with the pauses before each retry.
const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(16),
];

/// Something that happened that a tenant may want to hear about.
#[derive(Clone, Debug)]
pub enum Event {
    Message {
        conversation: String,
        message: String,
        role: &'static str,
        at: i64,
        text: String,
    },
    Erased {
        conversation: String,
    },
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Message { .. } => "conversation.message",
            Event::Erased { .. } => "conversation.erased",
        }
    }

    fn payload(&self, delivery: &str, tenant: &TenantId, include_content: bool) -> Value {
        let data = match self {
            Event::Message {
                conversation,
                message,
                role,
                at,
                text,
            } => {
                let mut message = json!({"id": message, "role": role, "at": db::format_time(*at)});
                if include_content {
                    message["text"] = json!(text);
                }
                json!({"conversation": conversation, "message": message})
            }
            Event::Erased { conversation } => json!({"conversation": conversation}),
        };
        json!({"id": delivery, "event": self.name(), "tenant": tenant.as_str(), "created_at": db::format_time(db::now_ms()), "data": data})
    }
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    tx: mpsc::Sender<(TenantId, Event)>,
    unconfigured: Arc<Mutex<Unconfigured>>,
}

/// Tenants the delivery task found without an endpoint, so their events are not even queued
/// (it was a catalog read per message, two per reply). Only setting an endpoint can make an
/// entry stale, and [`Webhooks::endpoint_set`] removes it; `generation` keeps a lookup that
/// raced such a set from remembering its outdated answer.
#[derive(Default)]
struct Unconfigured {
    tenants: HashSet<TenantId>,
    generation: u64,
}

impl Webhooks {
    /// Starts the delivery task.
    pub fn start(catalog: Catalog) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let unconfigured = Arc::new(Mutex::new(Unconfigured::default()));
        tokio::spawn(deliver_all(catalog, rx, unconfigured.clone()));
        Self { tx, unconfigured }
    }

    /// Queues an event; never waits.
    pub fn emit(&self, tenant: &TenantId, event: Event) {
        self.emit_with(tenant, || event);
    }

    /// [`emit`](Self::emit), building the event only for a tenant that may have an endpoint.
    pub fn emit_with(&self, tenant: &TenantId, event: impl FnOnce() -> Event) {
        if lock(&self.unconfigured).tenants.contains(tenant) {
            return;
        }
        if self.tx.try_send((tenant.clone(), event())).is_err() {
            tracing::warn!(tenant = %tenant, "webhook queue full; event dropped");
        }
    }

    /// Call once a tenant's endpoint is stored: its events are looked up and queued again.
    pub fn endpoint_set(&self, tenant: &TenantId) {
        let mut unconfigured = lock(&self.unconfigured);
        unconfigured.tenants.remove(tenant);
        unconfigured.generation += 1;
    }
}

fn lock(unconfigured: &Mutex<Unconfigured>) -> std::sync::MutexGuard<'_, Unconfigured> {
    unconfigured
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

async fn deliver_all(
    catalog: Catalog,
    mut rx: mpsc::Receiver<(TenantId, Event)>,
    unconfigured: Arc<Mutex<Unconfigured>>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => return tracing::error!(error = %e, "webhooks disabled: no HTTP client"),
    };
    while let Some((tenant, event)) = rx.recv().await {
        let lookup = tenant.clone();
        let generation = lock(&unconfigured).generation;
        let endpoint = match catalog.call(move |c| webhooks::get(c, &lookup)).await {
            Ok(Some(endpoint)) => endpoint,
            Ok(None) => {
                let mut unconfigured = lock(&unconfigured);
                if unconfigured.generation == generation
                    && unconfigured.tenants.len() < UNCONFIGURED_MAX
                {
                    unconfigured.tenants.insert(tenant);
                }
                continue;
            }
            Err(_) => continue,
        };
        // Deliveries run concurrently so one slow receiver does not hold up the others.
        tokio::spawn(deliver(
            catalog.clone(),
            client.clone(),
            tenant,
            endpoint,
            event,
        ));
    }
}

async fn deliver(
    catalog: Catalog,
    client: reqwest::Client,
    tenant: TenantId,
    endpoint: webhooks::Endpoint,
    event: Event,
) {
    let id = format!("dlv_{}", hex::encode(crypto::random_bytes::<12>()));
    let body = event
        .payload(&id, &tenant, endpoint.include_content)
        .to_string();
    let mut last_status = None;
    for attempt in 0..=BACKOFF.len() {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let sent = client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("x-chatvault-event", event.name())
            .header("x-chatvault-delivery", &id)
            .header(
                "x-chatvault-signature",
                signature(&endpoint.secret, timestamp, body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await;
        last_status = sent.as_ref().ok().map(|r| r.status().as_u16());
        let delivered = sent.is_ok_and(|r| r.status().is_success());
        let attempts = u32::try_from(attempt + 1).unwrap_or(u32::MAX);
        let status = if delivered {
            "delivered"
        } else if attempt == BACKOFF.len() {
            "failed"
        } else {
            "pending"
        };
        log_delivery(
            &catalog,
            &tenant,
            &id,
            event.name(),
            status,
            attempts,
            last_status,
        )
        .await;
        if delivered {
            return;
        }
        if let Some(pause) = BACKOFF.get(attempt) {
            tokio::time::sleep(*pause).await;
        }
    }
    tracing::warn!(tenant = %tenant, delivery = %id, status = ?last_status, "webhook delivery failed");
}

async fn log_delivery(
    catalog: &Catalog,
    tenant: &TenantId,
    id: &str,
    event: &'static str,
    status: &'static str,
    attempts: u32,
    last_status: Option<u16>,
) {
    let (tenant, id) = (tenant.clone(), id.to_owned());
    let _ = catalog
        .call(move |c| {
            webhooks::record_delivery(c, &tenant, &id, event, status, attempts, last_status)
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = signature("secret", 1700000000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("secret", 1700000001, b"{}"));
        assert_ne!(a, signature("secret", 1700000000, b"{ }"));
        assert_ne!(a, signature("other", 1700000000, b"{}"));
    }

    #[test]
    fn content_is_in_the_payload_only_when_opted_in() {
        let tenant = TenantId::parse("acme").unwrap();
        let event = Event::Message {
            conversation: "c_1".into(),
            message: "m_1".into(),
            role: "visitor",
            at: 0,
            text: "secret words".into(),
        };
        assert!(
            !event
                .payload("d", &tenant, false)
                .to_string()
                .contains("secret words")
        );
        assert_eq!(
            event.payload("d", &tenant, true)["data"]["message"]["text"],
            "secret words"
        );
    }
}
