//! One remote WebRTC endpoint as the shared socket sees it: its ICE credentials, the address
//! ICE chose for it, and queues for what it sends us.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

/// DTLS flights are a handful of datagrams; more queued than this is a peer misbehaving.
const DTLS_QUEUE: usize = 64;
/// Inbound RTP/RTCP waiting for the session: a publisher's burst of a large keyframe fits.
const MEDIA_QUEUE: usize = 1024;

pub struct Peer {
    /// Our ICE ufrag for this peer: the first half of its binding requests' USERNAME.
    pub ufrag: String,
    /// Our ICE password: keys the binding requests' MESSAGE-INTEGRITY.
    pub pwd: String,
    dtls_tx: mpsc::Sender<Bytes>,
    media_tx: mpsc::Sender<Bytes>,
    remote: watch::Sender<Option<SocketAddr>>,
    nominated: AtomicBool,
    last_seen_ms: AtomicU64,
    dropped: AtomicU64,
}

/// The session's side of a peer.
pub struct PeerRx {
    pub dtls: mpsc::Receiver<Bytes>,
    pub media: mpsc::Receiver<Bytes>,
    /// The address to send to; `None` until a valid binding request arrived.
    pub remote: watch::Receiver<Option<SocketAddr>>,
}

impl Peer {
    pub(super) fn new(now_ms: u64) -> (Arc<Peer>, PeerRx) {
        let (dtls_tx, dtls) = mpsc::channel(DTLS_QUEUE);
        let (media_tx, media) = mpsc::channel(MEDIA_QUEUE);
        let (remote_tx, remote) = watch::channel(None);
        let peer = Arc::new(Peer {
            // RFC 8445 5.3: at least 24 bits of randomness in the ufrag, 128 in the password.
            ufrag: super::super::session::random_token()[..16].to_string(),
            pwd: super::super::session::random_token(),
            dtls_tx,
            media_tx,
            remote: remote_tx,
            nominated: AtomicBool::new(false),
            last_seen_ms: AtomicU64::new(now_ms),
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

    /// A valid binding request came from `from`. ICE-lite: the first valid check gives an
    /// address to answer DTLS on; a nominating check (USE-CANDIDATE) settles it.
    pub(super) fn checked(&self, from: SocketAddr, nominate: bool) {
        let nominated = self.nominated.load(Ordering::Relaxed);
        if nominate {
            self.nominated.store(true, Ordering::Relaxed);
        }
        if nominate || !nominated {
            self.remote.send_if_modified(|r| {
                let changed = *r != Some(from);
                *r = Some(from);
                changed
            });
        }
    }

    pub(super) fn seen(&self, now_ms: u64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }

    /// When the peer last sent us anything we could attribute to it (ms on the transport's
    /// clock): consent freshness.
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
