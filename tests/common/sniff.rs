//! A client-side UDP socket for the tests' `webrtc` peers that reads the SRTP profile out of
//! the DTLS hellos crossing it (the `webrtc` crate keeps the negotiated profile private), and
//! notices DTLS alerts (close_notify) from the server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hubcast::servers::webrtc::dtls_sniff::{find_hello, Hello};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;
use webrtc::util::{self, Conn};

const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;

/// The SRTP profile agreed with each remote address, and DTLS alerts (close_notify or fatal)
/// from peers, as seen on the wire.
#[derive(Debug)]
pub struct SrtpObserver {
    chosen: Mutex<HashMap<SocketAddr, u16>>,
    alerts: broadcast::Sender<SocketAddr>,
}

impl Default for SrtpObserver {
    fn default() -> Self {
        SrtpObserver {
            chosen: Mutex::default(),
            alerts: broadcast::channel(64).0,
        }
    }
}

impl SrtpObserver {
    /// Addresses that sent a DTLS alert. `webrtc` 0.17 does not end a peer connection on a
    /// peer's close_notify; this lets a session end at once instead of after the ICE timeout.
    pub fn alerts(&self) -> broadcast::Receiver<SocketAddr> {
        self.alerts.subscribe()
    }

    fn observe_incoming(&self, datagram: &[u8], remote: SocketAddr) {
        // After the handshake every alert from a peer is close_notify or fatal: the record's
        // content type is in clear even when the alert itself is encrypted.
        if datagram.first() == Some(&CONTENT_ALERT) {
            let _ = self.alerts.send(remote);
            return;
        }
        self.observe(datagram, remote);
    }

    fn observe(&self, datagram: &[u8], remote: SocketAddr) {
        // DTLS records start with a content type in 20..=63 (RFC 7983); skip RTP/STUN cheaply.
        if datagram.first() != Some(&CONTENT_HANDSHAKE) {
            return;
        }
        if let Some(Hello::Server(p)) = find_hello(datagram) {
            if let Ok(mut m) = self.chosen.lock() {
                m.insert(remote, p);
            }
        }
    }

    pub fn profile_for(&self, remote: SocketAddr) -> Option<u16> {
        self.chosen.lock().ok()?.get(&remote).copied()
    }

    /// The profile of every peer currently known (sessions forget theirs when they end).
    pub fn profiles_in_use(&self) -> Vec<u16> {
        self.chosen
            .lock()
            .map(|m| m.values().copied().collect())
            .unwrap_or_default()
    }

    pub fn forget(&self, remote: SocketAddr) {
        if let Ok(mut m) = self.chosen.lock() {
            m.remove(&remote);
        }
    }
}

/// A UDP socket that reports DTLS hellos to an [`SrtpObserver`] in both directions.
pub struct SniffingConn {
    socket: Arc<UdpSocket>,
    observer: Arc<SrtpObserver>,
}

impl SniffingConn {
    pub fn new(socket: Arc<UdpSocket>, observer: Arc<SrtpObserver>) -> Self {
        SniffingConn { socket, observer }
    }
}

#[async_trait]
impl Conn for SniffingConn {
    async fn connect(&self, addr: SocketAddr) -> util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }
    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        Ok(self.socket.recv(buf).await?)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let (n, from) = self.socket.recv_from(buf).await?;
        self.observer.observe_incoming(&buf[..n], from);
        Ok((n, from))
    }
    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        self.observer.observe(buf, target);
        Ok(self.socket.send_to(buf, target).await?)
    }
    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
