//! Per-tenant gates: every widget socket and API request holds its tenant's gate open while it
//! runs. Freezing a tenant (the first step of `tenant move`) shuts the gate to newcomers, asks
//! the sockets inside to leave once their reply is done, and waits until nobody is left, so a
//! snapshot taken then holds every message the tenant ever accepted here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::TenantId;
use crate::error::{Error, Result};

/// How long a client should wait before retrying a frozen tenant, in milliseconds.
pub const RETRY_AFTER_MS: u64 = 2_000;

/// The gates of every tenant with something in flight or frozen. Cheap to clone.
#[derive(Clone, Default)]
pub struct Gates {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    tenants: Mutex<HashMap<TenantId, Entry>>,
    /// Woken whenever someone leaves a frozen tenant.
    left: Notify,
    /// Numbers every freeze, across tenants and entries that come and go.
    freezes: std::sync::atomic::AtomicU64,
}

struct Entry {
    inside: usize,
    frozen: bool,
    /// Which freeze this is (unique for the process), so an expiring lease never thaws a later
    /// one.
    generation: u64,
    /// Cancelled when the tenant freezes: sockets inside finish their reply, then close.
    leave: CancellationToken,
}

impl Entry {
    fn open() -> Self {
        Self {
            inside: 0,
            frozen: false,
            generation: 0,
            leave: CancellationToken::new(),
        }
    }
}

/// Held while a socket or request works on a tenant.
pub struct Pass {
    gates: Gates,
    tenant: TenantId,
    leave: CancellationToken,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pass({})", self.tenant)
    }
}

impl Pass {
    /// Resolves when the tenant is frozen and this holder should finish and go.
    pub async fn asked_to_leave(&self) {
        self.leave.cancelled().await;
    }

    pub fn is_asked_to_leave(&self) -> bool {
        self.leave.is_cancelled()
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut tenants = self.gates.lock();
        let mut frozen = false;
        if let Some(entry) = tenants.get_mut(&self.tenant) {
            entry.inside = entry.inside.saturating_sub(1);
            frozen = entry.frozen;
            if entry.inside == 0 && !frozen {
                tenants.remove(&self.tenant);
            }
        }
        drop(tenants);
        // Only a freeze waits for leavers; every other request leaves without waking anyone.
        if frozen {
            self.gates.shared.left.notify_waiters();
        }
    }
}

impl Gates {
    /// Lets a socket or request in, unless the tenant is frozen (503 `tenant_moving`).
    pub fn enter(&self, tenant: &TenantId) -> Result<Pass> {
        let mut tenants = self.lock();
        let entry = tenants.entry(tenant.clone()).or_insert_with(Entry::open);
        if entry.frozen {
            return Err(Error::TenantMoving);
        }
        entry.inside += 1;
        Ok(Pass {
            gates: self.clone(),
            tenant: tenant.clone(),
            leave: entry.leave.clone(),
        })
    }

    pub fn is_frozen(&self, tenant: &TenantId) -> bool {
        self.lock().get(tenant).is_some_and(|e| e.frozen)
    }

    /// Shuts the tenant's gate, asks everyone inside to leave, and waits (up to `within`) until
    /// they have. On timeout the tenant stays frozen; call [`thaw`](Self::thaw) to reopen it.
    /// The freeze is a lease: unless the tenant is thawed or released first, it reopens by
    /// itself after `lease`, so a move whose driver died does not keep a tenant down.
    pub async fn freeze(&self, tenant: &TenantId, within: Duration, lease: Duration) -> Result<()> {
        let generation = {
            let mut tenants = self.lock();
            let entry = tenants.entry(tenant.clone()).or_insert_with(Entry::open);
            entry.frozen = true;
            entry.generation = 1 + self
                .shared
                .freezes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            entry.leave.cancel();
            entry.generation
        };
        let (gates, id) = (self.clone(), tenant.clone());
        tokio::spawn(async move {
            tokio::time::sleep(lease).await;
            let still = gates
                .lock()
                .get(&id)
                .is_some_and(|e| e.frozen && e.generation == generation);
            if still {
                tracing::warn!(tenant = %id, "a move's freeze expired before its release; the tenant is open again");
                gates.thaw(&id);
            }
        });
        let drained = async {
            loop {
                let left = self.shared.left.notified();
                tokio::pin!(left);
                left.as_mut().enable();
                if self.lock().get(tenant).is_none_or(|e| e.inside == 0) {
                    return;
                }
                left.await;
            }
        };
        tokio::time::timeout(within, drained).await.map_err(|_| {
            Error::Unavailable(format!(
                "tenant {tenant} still had sockets or requests open after {} s",
                within.as_secs()
            ))
        })
    }

    /// Reopens a frozen tenant (a move that was called off).
    pub fn thaw(&self, tenant: &TenantId) {
        let mut tenants = self.lock();
        if let Some(entry) = tenants.get_mut(tenant) {
            if entry.inside == 0 {
                tenants.remove(tenant);
            } else {
                entry.frozen = false;
                entry.leave = CancellationToken::new();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Entry>> {
        self.shared
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn freezing_waits_for_everyone_inside_and_shuts_out_newcomers() {
        let gates = Gates::default();
        let (acme, other) = (tenant("acme"), tenant("other"));
        let inside = gates.enter(&acme).unwrap();
        let _bystander = gates.enter(&other).unwrap();

        let freezing = tokio::spawn({
            let (gates, acme) = (gates.clone(), acme.clone());
            async move {
                gates
                    .freeze(&acme, Duration::from_secs(5), Duration::from_secs(60))
                    .await
            }
        });
        tokio::time::timeout(Duration::from_secs(1), inside.asked_to_leave())
            .await
            .expect("the holder is asked to leave");
        assert!(matches!(gates.enter(&acme), Err(Error::TenantMoving)));
        assert!(gates.enter(&other).is_ok(), "other tenants are untouched");
        assert!(
            !freezing.is_finished(),
            "freeze waits while someone is inside"
        );

        drop(inside);
        freezing.await.unwrap().unwrap();
        assert!(gates.is_frozen(&acme));

        gates.thaw(&acme);
        let again = gates.enter(&acme).unwrap();
        assert!(!again.is_asked_to_leave());
    }

    #[tokio::test]
    async fn freezing_gives_up_after_its_deadline_and_stays_frozen() {
        let gates = Gates::default();
        let acme = tenant("acme");
        let _stuck = gates.enter(&acme).unwrap();
        let err = gates
            .freeze(&acme, Duration::from_millis(50), Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)));
        assert!(gates.is_frozen(&acme));
    }

    #[tokio::test]
    async fn a_freeze_nobody_ends_expires_but_never_ends_a_later_one() {
        let gates = Gates::default();
        let acme = tenant("acme");
        gates
            .freeze(&acme, Duration::from_secs(1), Duration::from_millis(50))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!gates.is_frozen(&acme), "the lease expired");

        gates
            .freeze(&acme, Duration::from_secs(1), Duration::from_millis(100))
            .await
            .unwrap();
        gates.thaw(&acme);
        gates
            .freeze(&acme, Duration::from_secs(1), Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            gates.is_frozen(&acme),
            "the first lease does not end the second freeze"
        );
    }
}
