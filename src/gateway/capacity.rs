//! Caps on concurrent widget sockets, in all and per client IP, checked at the handshake. A
//! [`SocketSlot`] is held for the socket's lifetime and frees its place when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open sockets.
#[derive(Default)]
pub struct SocketCounter {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a socket was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    ServerFull,
    TooManyFromClient,
}

/// One open socket's place.
pub struct SocketSlot {
    counter: Arc<SocketCounter>,
    ip: IpAddr,
}

impl SocketCounter {
    /// Takes a place for a socket from `ip`, or says why not.
    pub fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<SocketSlot, Refused> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.0 >= max_total {
            return Err(Refused::ServerFull);
        }
        let from_ip = open.1.entry(ip).or_insert(0);
        if *from_ip >= max_per_ip {
            return Err(Refused::TooManyFromClient);
        }
        *from_ip += 1;
        open.0 += 1;
        Ok(SocketSlot {
            counter: self.clone(),
            ip,
        })
    }

    /// Sockets open right now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.0).unwrap_or(0)
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self
            .counter
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_ip_and_in_all_and_freed_on_drop() {
        let counter = Arc::new(SocketCounter::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = counter.acquire(a, 3, 2).unwrap();
        let _second = counter.acquire(a, 3, 2).unwrap();
        assert_eq!(
            counter.acquire(a, 3, 2).err(),
            Some(Refused::TooManyFromClient)
        );
        let _third = counter.acquire(b, 3, 2).unwrap();
        assert_eq!(counter.acquire(b, 3, 2).err(), Some(Refused::ServerFull));
        drop(first);
        let _again = counter
            .acquire(a, 3, 2)
            .expect("a freed place can be taken again");
        assert_eq!(counter.open(), 3);
    }
}
