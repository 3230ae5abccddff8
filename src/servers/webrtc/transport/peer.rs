//! One remote WebRTC endpoint as the shared socket sees it: its ICE credentials, the address
//! ICE chose for it, and queues for what it sends us.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::udp::PeerAddr;

/// DTLS flights are a handful of datagrams; more queued than this is a peer misbehaving.
const DTLS_QUEUE: usize = 64;
/// Inbound RTP/RTCP waiting for the session: a publisher's burst of a large keyframe fits.
const MEDIA_QUEUE: usize = 1024;
/// A consent request to a new address is resent at most this often while unanswered, so a
/// flood of spoofed checks reflects no more than it brings.
const PROBE_RESEND_MS: u64 = 500;
/// And a probe to another new address waits this long after the last one: a peer spraying
/// checks from many (spoofed) addresses gets a few probes a second in all, not one each.
const PROBE_MIN_GAP_MS: u64 = 200;
/// Addresses one peer may have routed to it at once (host, reflexive, relayed, a move or
/// two); older ones are forgotten first, never the one media goes to.
pub const MAX_ADDRESSES: usize = 8;

/// A consent request of ours to an address the peer's checks came from, not yet answered.
struct Probe {
    to: PeerAddr,
    txid: [u8; 12],
    sent_ms: u64,
}

/// What the transport should do after a valid check.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Nothing more.
    Done,
    /// Send our consent request to this new address before media may go there.
    Probe,
}

pub struct Peer {
    /// Our ICE ufrag for this peer: the first half of its binding requests' USERNAME.
    pub ufrag: String,
    /// Our ICE password: keys the binding requests' MESSAGE-INTEGRITY.
    pub pwd: String,
    /// The peer's ICE credentials from its offer: our consent requests use them.
    pub remote_ufrag: String,
    pub remote_pwd: String,
    dtls_tx: mpsc::Sender<Bytes>,
    media_tx: mpsc::Sender<Bytes>,
    remote: watch::Sender<Option<PeerAddr>>,
    nominated: AtomicBool,
    /// DTLS is up: from now on media follows only an address that answered our consent
    /// request.
    established: AtomicBool,
    probe: Mutex<Option<Probe>>,
    /// Addresses routed to this peer, oldest first.
    addresses: Mutex<VecDeque<SocketAddr>>,
    last_seen_ms: AtomicU64,
    epoch: Instant,
    dropped: AtomicU64,
}

/// The session's side of a peer.
pub struct PeerRx {
    pub dtls: mpsc::Receiver<Bytes>,
    pub media: mpsc::Receiver<Bytes>,
    /// The address to send to; `None` until a valid binding request arrived.
    pub remote: watch::Receiver<Option<PeerAddr>>,
}

impl Peer {
    /// `epoch` is the transport's clock (`Transport::now_ms`).
    pub fn new(epoch: Instant, remote_ufrag: String, remote_pwd: String) -> (Arc<Peer>, PeerRx) {
        let now_ms = epoch.elapsed().as_millis() as u64;
        let (dtls_tx, dtls) = mpsc::channel(DTLS_QUEUE);
        let (media_tx, media) = mpsc::channel(MEDIA_QUEUE);
        let (remote_tx, remote) = watch::channel(None);
        let peer = Arc::new(Peer {
            // RFC 8445 5.3: at least 24 bits of randomness in the ufrag, 128 in the password.
            ufrag: crate::util::random_token()[..16].to_string(),
            pwd: crate::util::random_token(),
            remote_ufrag,
            remote_pwd,
            dtls_tx,
            media_tx,
            remote: remote_tx,
            nominated: AtomicBool::new(false),
            established: AtomicBool::new(false),
            probe: Mutex::new(None),
            addresses: Mutex::new(VecDeque::new()),
            last_seen_ms: AtomicU64::new(now_ms),
            epoch,
            dropped: AtomicU64::new(0),
        });
        (
            peer,
            PeerRx {
                dtls,
                media,
                remote,
            },
        )
    }

    /// A valid binding request came from `from`. ICE-lite: until DTLS is up, the first valid
    /// check gives an address to answer DTLS on and a nominating check (USE-CANDIDATE)
    /// settles it. Once DTLS is up, a check from the current address is consent, and a
    /// check from any other address only asks us to probe it.
    pub(super) fn checked(&self, from: PeerAddr, nominate: bool, now_ms: u64) -> CheckOutcome {
        let current = *self.remote.borrow();
        if current == Some(from) {
            self.seen(now_ms);
            return CheckOutcome::Done;
        }
        if !self.established.load(Ordering::Acquire) {
            let nominated = self.nominated.load(Ordering::Relaxed);
            if nominate {
                self.nominated.store(true, Ordering::Relaxed);
            }
            if nominate || !nominated {
                self.remote.send_replace(Some(from));
                self.seen(now_ms);
            }
            return CheckOutcome::Done;
        }
        let probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        match &*probe {
            Some(p) => {
                let gap = if p.to == from {
                    PROBE_RESEND_MS
                } else {
                    PROBE_MIN_GAP_MS
                };
                if now_ms.saturating_sub(p.sent_ms) < gap {
                    CheckOutcome::Done
                } else {
                    CheckOutcome::Probe
                }
            }
            None => CheckOutcome::Probe,
        }
    }

    /// `addr` is now routed to this peer. Returns an address to unroute when that makes
    /// more than [`MAX_ADDRESSES`].
    pub(super) fn add_address(&self, addr: SocketAddr) -> Option<SocketAddr> {
        let mut addrs = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if addrs.contains(&addr) {
            return None;
        }
        addrs.push_back(addr);
        if addrs.len() <= MAX_ADDRESSES {
            return None;
        }
        let current = self.remote().map(|r| r.remote);
        let oldest = addrs
            .iter()
            .position(|a| Some(*a) != current && *a != addr)?;
        addrs.remove(oldest)
    }

    /// Every address routed to this peer.
    pub(super) fn addresses(&self) -> Vec<SocketAddr> {
        self.addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Our consent request to `to` went out with this transaction id.
    pub(super) fn probing(&self, to: PeerAddr, txid: [u8; 12], now_ms: u64) {
        *self.probe.lock().unwrap_or_else(|p| p.into_inner()) = Some(Probe {
            to,
            txid,
            sent_ms: now_ms,
        });
    }

    /// A response with this transaction id came from `from` (its integrity checked by the
    /// caller): if it answers our probe, media moves there.
    pub(super) fn probe_answered(&self, from: PeerAddr, txid: [u8; 12], now_ms: u64) -> bool {
        let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        match &*probe {
            Some(p) if p.txid == txid && p.to == from => {
                *probe = None;
                self.remote.send_replace(Some(from));
                self.seen(now_ms);
                true
            }
            _ => false,
        }
    }

    /// DTLS is up at the current address.
    pub fn set_established(&self) {
        self.established.store(true, Ordering::Release);
    }

    /// The address media goes to now.
    pub fn remote(&self) -> Option<PeerAddr> {
        *self.remote.borrow()
    }

    /// Authenticated traffic from the peer (a valid check from its address, SRTP or SRTCP
    /// that verified): consent freshness (RFC 7675).
    pub fn seen(&self, now_ms: u64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }

    /// `seen` now: for sessions, which authenticate SRTP and SRTCP.
    pub fn touch(&self) {
        self.seen(self.epoch.elapsed().as_millis() as u64);
    }

    /// When the peer last sent us authenticated traffic (ms on the transport's clock).
    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// Inbound datagrams dropped because the session did not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(super) fn push_dtls(&self, data: Bytes) {
        if self.dtls_tx.try_send(data).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn push_media(&self, data: Bytes) {
        if self.media_tx.try_send(data).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 10_000 + i))
    }

    #[test]
    fn addresses_are_capped_and_the_current_one_is_kept() {
        let (peer, _rx) = Peer::new(Instant::now(), "u".into(), "p".into());
        let current = PeerAddr {
            remote: addr(0),
            local: None,
        };
        peer.remote.send_replace(Some(current));
        let mut evicted = Vec::new();
        for i in 0..(MAX_ADDRESSES as u16 + 5) {
            evicted.extend(peer.add_address(addr(i)));
        }
        assert_eq!(peer.addresses().len(), MAX_ADDRESSES);
        assert!(
            peer.addresses().contains(&addr(0)),
            "the current address stays"
        );
        assert_eq!(
            evicted,
            (1..=5).map(addr).collect::<Vec<_>>(),
            "oldest first"
        );
        assert_eq!(peer.add_address(addr(0)), None, "known: nothing to do");
    }

    #[test]
    fn probes_to_new_addresses_are_spaced() {
        let (peer, _rx) = Peer::new(Instant::now(), "u".into(), "p".into());
        let at = |i| PeerAddr {
            remote: addr(i),
            local: None,
        };
        peer.checked(at(0), true, 0);
        peer.set_established();
        assert_eq!(peer.checked(at(1), true, 1000), CheckOutcome::Probe);
        peer.probing(at(1), [1; 12], 1000);
        assert_eq!(peer.checked(at(2), true, 1100), CheckOutcome::Done);
        assert_eq!(peer.checked(at(1), true, 1300), CheckOutcome::Done);
        assert_eq!(peer.checked(at(2), true, 1300), CheckOutcome::Probe);
        assert_eq!(peer.checked(at(1), true, 1600), CheckOutcome::Probe);
    }
}
