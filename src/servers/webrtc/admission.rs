//! Offers on their way to a session: between its limit checks and the session's creation
//! an offer may wait (an on-demand source starting, a host name resolving), and it must
//! still count, or concurrent POSTs would all pass `webrtcMaxSessions`, the per-address
//! handshake cap and `maxReaders` together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    by_path: HashMap<String, usize>,
}

#[derive(Default)]
pub struct Admissions {
    counts: Mutex<Counts>,
}

/// What the checks see while they hold the admissions lock.
pub struct InFlight<'a> {
    owner: &'a Arc<Admissions>,
    counts: MutexGuard<'a, Counts>,
}

/// One offer being admitted; counts until dropped (once its session exists or it failed).
pub struct Admission {
    owner: Arc<Admissions>,
    ip: IpAddr,
    path: Option<String>,
}

impl Admissions {
    /// Locks the counts: check limits and `enter` under the same lock, so two offers
    /// cannot both take the last slot.
    pub fn lock(self: &Arc<Self>) -> InFlight<'_> {
        InFlight {
            owner: self,
            counts: self.counts.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

impl InFlight<'_> {
    pub fn total(&self) -> usize {
        self.counts.total
    }

    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.counts.by_ip.get(&ip).copied().unwrap_or(0)
    }

    pub fn reading(&self, path: &str) -> usize {
        self.counts.by_path.get(path).copied().unwrap_or(0)
    }

    pub fn enter(mut self, ip: IpAddr) -> Admission {
        self.counts.total += 1;
        *self.counts.by_ip.entry(ip).or_default() += 1;
        Admission {
            owner: Arc::clone(self.owner),
            ip,
            path: None,
        }
    }

    /// `admission` now also counts as a reader of `path`.
    pub fn read(mut self, admission: &mut Admission, path: &str) {
        if admission.path.is_none() {
            *self.counts.by_path.entry(path.to_string()).or_default() += 1;
            admission.path = Some(path.to_string());
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
        if let Some(p) = &self.path {
            if let Some(n) = c.by_path.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    c.by_path.remove(p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_admissions() {
        let a = Arc::new(Admissions::default());
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = a.lock().enter(ip);
        let mut second = a.lock().enter(ip);
        a.lock().read(&mut second, "cam");
        a.lock().read(&mut second, "cam");
        let l = a.lock();
        assert_eq!((l.total(), l.from_ip(ip), l.reading("cam")), (2, 2, 1));
        drop(l);
        drop(second);
        let l = a.lock();
        assert_eq!((l.total(), l.from_ip(ip), l.reading("cam")), (1, 1, 0));
        drop(l);
        drop(first);
        assert_eq!(a.lock().total(), 0);
        assert!(a.counts.lock().expect("lock").by_ip.is_empty());
    }
}
