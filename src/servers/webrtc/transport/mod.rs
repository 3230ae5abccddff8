//! hubcast's own WebRTC transport: every session on one UDP socket, ICE-lite, DTLS from the
//! `dtls` crate, SRTP protected in place.
//!
//! `webrtc`'s `RTCPeerConnection` runs a full ICE agent, interceptors and an allocating SRTP
//! session per connection; a media server that only answers needs none of that. Here one
//! task reads the socket and routes each datagram: STUN binding requests by the ICE ufrag
//! in their USERNAME (answered on the spot), everything else by the sender's address, which
//! a valid binding request registered. Sessions send media straight to the socket.

pub mod dtls;
pub mod gso;
pub mod ice;
pub mod inbound;
pub mod outbound;
pub mod peer;
pub mod rtcp;
pub mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

pub use peer::{Peer, PeerRx};
pub use udp::PeerAddr;

/// Longest datagram we accept: a full Ethernet frame's worth.
const MAX_DATAGRAM: usize = 1500;
/// An address stays with its session while the session heard from it this recently.
const ADDRESS_HOLD_MS: u64 = 10_000;

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Arc<Peer>>,
    by_addr: HashMap<SocketAddr, Arc<Peer>>,
}

pub struct Transport {
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    routes: RwLock<Routes>,
    pub identity: dtls::Identity,
    epoch: Instant,
}

impl Transport {
    /// Binds the shared socket and starts the task that reads it.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Arc<Transport>> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("webrtcLocalUDPAddress: cannot bind UDP {addr}: {e}"))?;
        raise_buffers(&socket);
        udp::enable_pktinfo(&socket).map_err(|e| {
            anyhow::anyhow!("webrtcLocalUDPAddress: cannot ask for packet info on {addr}: {e}")
        })?;
        let local_addr = socket.local_addr()?;
        let t = Arc::new(Transport {
            socket: Arc::new(socket),
            local_addr,
            routes: RwLock::default(),
            identity: dtls::Identity::generate()?,
            epoch: Instant::now(),
        });
        tokio::spawn(receive_loop(Arc::downgrade(&t), Arc::clone(&t.socket)));
        Ok(t)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn socket(&self) -> &Arc<UdpSocket> {
        &self.socket
    }

    /// Milliseconds since the transport started: the clock of `Peer::last_seen`.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A new peer reachable under fresh ICE credentials; `remote_ufrag`/`remote_pwd` are
    /// the peer's own, from its offer.
    pub fn register(&self, remote_ufrag: &str, remote_pwd: &str) -> (Arc<Peer>, PeerRx) {
        let (peer, rx) = Peer::new(self.epoch, remote_ufrag.into(), remote_pwd.into());
        self.write()
            .by_ufrag
            .insert(peer.ufrag.clone(), Arc::clone(&peer));
        (peer, rx)
    }

    /// Forgets a peer: its datagrams are dropped from now on and its receivers end.
    pub fn unregister(&self, peer: &Peer) {
        let mut r = self.write();
        r.by_ufrag.remove(&peer.ufrag);
        for a in peer.addresses() {
            if r.by_addr
                .get(&a)
                .is_some_and(|p| std::ptr::eq(p.as_ref(), peer))
            {
                r.by_addr.remove(&a);
            }
        }
    }

    pub fn peers(&self) -> usize {
        self.read().by_ufrag.len()
    }

    /// Remote addresses routed to a peer, over all peers.
    pub fn addresses(&self) -> usize {
        self.read().by_addr.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.routes.write().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, pkt: &[u8], from: PeerAddr) {
        match pkt.first().copied() {
            // RFC 7983 demultiplexing on the first byte.
            Some(0..=3) => self.handle_stun(pkt, from),
            Some(20..=63) | Some(128..=191) => {
                let Some(peer) = self.read().by_addr.get(&from.remote).cloned() else {
                    return;
                };
                // Not consent yet: the session counts it once SRTP authenticates it.
                let data = Bytes::copy_from_slice(pkt);
                if pkt[0] < 64 {
                    peer.push_dtls(data);
                } else {
                    peer.push_media(data);
                }
            }
            _ => {}
        }
    }

    fn handle_stun(&self, pkt: &[u8], from: PeerAddr) {
        match ice::kind(pkt) {
            ice::Kind::Request => self.handle_check(pkt, from),
            ice::Kind::Response(txid) => {
                let Some(peer) = self.read().by_addr.get(&from.remote).cloned() else {
                    return;
                };
                match ice::consent_answered(pkt, &peer) {
                    Ok(()) if peer.probe_answered(from, txid, self.now_ms()) => {
                        debug!(%from, ufrag = %peer.ufrag, "consent: media follows the peer to a new address");
                    }
                    Ok(()) => debug!(%from, "STUN response to no probe of ours"),
                    Err(e) => debug!(%from, error = %e, "STUN response ignored"),
                }
            }
            ice::Kind::Other => {
                debug!(%from, "STUN message ignored: not a binding request or response")
            }
        }
    }

    fn handle_check(&self, pkt: &[u8], from: PeerAddr) {
        let lookup = |ufrag: &str| self.read().by_ufrag.get(ufrag).cloned();
        let ice::Checked {
            peer,
            response,
            nominate,
        } = match ice::answer_binding(pkt, from.remote, lookup) {
            Ok(c) => c,
            Err(e) => {
                debug!(%from, error = %e, "STUN message ignored");
                return;
            }
        };
        let now = self.now_ms();
        let owner = self.read().by_addr.get(&from.remote).cloned();
        match owner {
            Some(p) if Arc::ptr_eq(&p, &peer) => {}
            // Another live session's address: a check with other credentials from there
            // must not steal its traffic (spoofed, or a stale client).
            Some(p) if now.saturating_sub(p.last_seen_ms()) < ADDRESS_HOLD_MS => {
                debug!(%from, "binding request from an address another session holds: ignored");
                return;
            }
            _ => {
                let mut r = self.write();
                r.by_addr.insert(from.remote, Arc::clone(&peer));
                if let Some(old) = peer.add_address(from.remote) {
                    if r.by_addr.get(&old).is_some_and(|p| Arc::ptr_eq(p, &peer)) {
                        r.by_addr.remove(&old);
                    }
                }
            }
        }
        // From the address the check was sent to (RFC 8445 7.3).
        if let Err(e) = udp::try_send(&self.socket, &response, from) {
            debug!(%from, error = %e, "STUN response not sent");
        }
        if peer.checked(from, nominate, now) == peer::CheckOutcome::Probe {
            match ice::consent_request(&peer) {
                Ok((txid, req)) => {
                    peer.probing(from, txid, now);
                    if let Err(e) = udp::try_send(&self.socket, &req, from) {
                        debug!(%from, error = %e, "consent request not sent");
                    }
                }
                Err(e) => warn!(error = %e, "consent request not built"),
            }
        }
    }
}

/// Reads the shared socket until the transport is dropped.
async fn receive_loop(transport: std::sync::Weak<Transport>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match udp::recv(&socket, &mut buf).await {
            Ok(v) => v,
            Err(e) => {
                // ICMP port unreachable from a gone peer shows up here on some systems.
                debug!(error = %e, "WebRTC UDP receive");
                continue;
            }
        };
        let Some(t) = transport.upgrade() else { return };
        t.handle(&buf[..n], from);
    }
}

/// Bigger kernel buffers: hundreds of viewers' RTCP and STUN arrive in bursts, and a burst
/// of sends must not hit a full send buffer.
fn raise_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    for (what, r) in [
        ("receive", s.set_recv_buffer_size(4 << 20)),
        ("send", s.set_send_buffer_size(4 << 20)),
    ] {
        if let Err(e) = r {
            warn!(error = %e, "WebRTC UDP socket: cannot raise the {what} buffer");
        }
    }
}
