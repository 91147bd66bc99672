//! How many Socket.IO connections the server holds, in total and from each address: a client
//! (or a script) opening connections without end is refused before it costs memory to everyone.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use classroom_wire::ErrorCode;
use dashmap::DashMap;

use crate::error::Refusal;

pub(crate) struct Admission {
    total: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    /// 0: no limit.
    max_total: usize,
    /// 0: no limit (behind a reverse proxy every connection comes from its address).
    max_per_ip: usize,
}

/// One admitted connection; dropping it (with the socket's state) frees its place.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Admission {
            total: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            max_total,
            max_per_ip,
        })
    }

    /// A place for a connection from `ip` (unknown for in-process callers), or why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Refusal> {
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        // From here on a Slot exists, so every refusal below gives its place back on drop.
        let mut slot = Slot {
            admission: self.clone(),
            ip: None,
        };
        if self.max_total > 0 && total > self.max_total {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "the server is full ({} connections); try again later",
                    self.max_total
                ),
            ));
        }
        if let Some(ip) = ip {
            let count = {
                let mut count = self.per_ip.entry(ip).or_insert(0);
                *count += 1;
                *count
            };
            slot.ip = Some(ip);
            if self.max_per_ip > 0 && count > self.max_per_ip {
                return Err(Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "too many connections from your address (at most {})",
                        self.max_per_ip
                    ),
                ));
            }
        }
        Ok(slot)
    }

    #[cfg(test)]
    fn counts(&self, ip: IpAddr) -> (usize, usize) {
        (
            self.total.load(Ordering::Acquire),
            self.per_ip.get(&ip).map_or(0, |count| *count),
        )
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            // Removed at zero, so the map holds only addresses with connections.
            self.admission.per_ip.remove_if_mut(&ip, |_, count| {
                *count -= 1;
                *count == 0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_per_address_and_in_total_and_freed_on_drop() {
        let admission = Admission::new(3, 2);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let first = admission.admit(Some(a)).unwrap();
        let _second = admission.admit(Some(a)).unwrap();
        let refused = admission.admit(Some(a)).err().unwrap();
        assert!(
            refused.message.contains("your address"),
            "{}",
            refused.message
        );
        assert_eq!(admission.counts(a), (2, 2), "a refusal keeps no place");
        let _third = admission.admit(Some(b)).unwrap();
        assert!(
            admission
                .admit(Some(b))
                .err()
                .unwrap()
                .message
                .contains("full")
        );
        drop(first);
        assert_eq!(admission.counts(a), (2, 1));
        assert!(
            admission.admit(None).is_ok(),
            "a freed place can be taken again"
        );
    }

    #[test]
    fn zero_means_no_limit_and_the_map_forgets_idle_addresses() {
        let admission = Admission::new(0, 0);
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        let slots: Vec<Slot> = (0..100)
            .map(|_| admission.admit(Some(a)).unwrap())
            .collect();
        assert_eq!(admission.counts(a), (100, 100));
        drop(slots);
        assert_eq!(admission.counts(a), (0, 0));
        assert!(admission.per_ip.is_empty());
    }
}
