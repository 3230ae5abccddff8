//! Caps on RTSP control connections, in total and per client address, so that one host
//! opening sockets cannot exhaust file descriptors or memory for every other client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections at once, all clients together.
pub const MAX_CONNECTIONS: usize = 4096;
/// Connections at once from one address (cameras and readers behind one NAT included).
pub const MAX_PER_IP: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("{0} RTSP connections open: the server's limit")]
    Total(usize),
    #[error("{count} RTSP connections open from {ip}: the per-address limit")]
    PerIp { ip: IpAddr, count: usize },
}

#[derive(Debug)]
pub struct ConnLimits {
    total: usize,
    per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; its count is given back when dropped, however it ends.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    pub fn new(total: usize, per_ip: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            total,
            per_ip,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, LimitError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.total {
            return Err(LimitError::Total(open.0));
        }
        let count = open.1.get(&ip).copied().unwrap_or(0);
        if count >= self.per_ip {
            return Err(LimitError::PerIp { ip, count });
        }
        open.0 += 1;
        open.1.insert(ip, count + 1);
        Ok(Slot {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
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
    fn caps_per_address_and_in_total_and_gives_back() {
        let limits = ConnLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(
            limits.admit(a).unwrap_err(),
            LimitError::PerIp { ip: a, count: 2 }
        );
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), LimitError::Total(3));
        drop(a1);
        assert!(
            limits.admit(a).is_ok(),
            "a closed connection frees its slot"
        );
    }
}
