//! WebRTC sessions (WHIP publishers and WHEP readers) and their registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use tokio::sync::watch;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;

const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A DTLS handshake in flight finishes in milliseconds; one that has not started never will.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Whip,
    Whep,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Whip => "whip",
            SessionKind::Whep => "whep",
        }
    }
}

pub struct Session {
    /// Public id (API, logs). Not a capability.
    pub id: String,
    /// The unguessable part of the session URL: whoever knows it may PATCH or DELETE.
    pub secret: String,
    pub kind: SessionKind,
    pub path: String,
    pub peer: SocketAddr,
    pub etag: String,
    pub created: Instant,
    pub created_at: SystemTime,
    pub pc: Arc<RTCPeerConnection>,
    pub counters: Arc<SessionCounters>,
    close: watch::Sender<Option<String>>,
}

/// What the control API and metrics show of a session.
#[derive(Debug, Default)]
pub struct SessionCounters {
    /// ICE+DTLS completed.
    pub established: AtomicBool,
    pub bytes_sent: AtomicU64,
    pub packets_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub packets_received: AtomicU64,
}

impl Session {
    /// Asks the session's task to end with a reason (DELETE, kick, shutdown).
    pub fn close(&self, reason: &str) {
        self.close.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason.to_string());
                true
            } else {
                false
            }
        });
    }

    /// Resolves with the reason once `close` was called.
    pub fn close_requested(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut rx = self.close.subscribe();
        async move {
            match rx.wait_for(|r| r.is_some()).await {
                Ok(r) => r.clone().unwrap_or_default(),
                Err(_) => "server shutting down".to_string(),
            }
        }
    }

    /// Closes the peer connection, bounded: a close that hangs must not keep the session's
    /// task alive for ever.
    ///
    /// A connection in the middle of its ICE/DTLS handshake is let finish it first (bounded):
    /// `webrtc` 0.17 leaves tasks behind when closed while DTLS and SRTP are starting.
    pub async fn close_pc(&self, mut state: PcState) {
        let started = Instant::now();
        state.settle(SETTLE_TIMEOUT).await;
        match tokio::time::timeout(CLOSE_TIMEOUT, self.pc.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(id = %self.id, error = %e, "peer connection close"),
            Err(_) => tracing::warn!(id = %self.id, "peer connection close timed out"),
        }
        tracing::debug!(id = %self.id, took = ?started.elapsed(), "peer connection closed");
    }

    pub fn location(&self) -> String {
        format!("/{}/{}/{}", self.path, self.kind.as_str(), self.secret)
    }
}

/// 128 random bits as hex: session URLs must not be guessable from one another.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Default)]
pub struct Sessions {
    by_secret: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.by_secret.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create(
        &self,
        kind: SessionKind,
        path: &str,
        peer: SocketAddr,
        pc: Arc<RTCPeerConnection>,
        counters: Arc<SessionCounters>,
    ) -> Arc<Session> {
        let s = Arc::new(Session {
            id: random_token(),
            secret: random_token(),
            kind,
            path: path.to_string(),
            peer,
            etag: format!("\"{}\"", random_token()),
            created: Instant::now(),
            created_at: SystemTime::now(),
            pc,
            counters,
            close: watch::channel(None).0,
        });
        self.lock().insert(s.secret.clone(), Arc::clone(&s));
        s
    }

    pub fn get(&self, secret: &str) -> Option<Arc<Session>> {
        self.lock().get(secret).cloned()
    }

    /// By public id (the control API), not by secret.
    pub fn by_id(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().values().find(|s| s.id == id).cloned()
    }

    pub fn remove(&self, secret: &str) {
        self.lock().remove(secret);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    pub fn close_all(&self, reason: &str) {
        for s in self.all() {
            s.close(reason);
        }
    }
}

/// The remote address of the selected ICE pair: the key under which the shared socket
/// observes this peer's DTLS.
pub async fn remote_addr(pc: &RTCPeerConnection) -> Option<SocketAddr> {
    let pair = pc
        .sctp()
        .transport()
        .ice_transport()
        .get_selected_candidate_pair()
        .await?;
    let ip = pair.remote.address.parse().ok()?;
    Some(SocketAddr::new(ip, pair.remote.port))
}

/// Resolves once `remote` sent a DTLS alert (close_notify when the peer hangs up).
pub async fn dtls_alert(
    mut alerts: tokio::sync::broadcast::Receiver<SocketAddr>,
    remote: Option<SocketAddr>,
) {
    let Some(remote) = remote else {
        return std::future::pending().await;
    };
    loop {
        match alerts.recv().await {
            Ok(a) if a == remote => return,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return std::future::pending().await
            }
        }
    }
}

/// Follows a peer connection's state: `connected()` resolves once ICE+DTLS are up,
/// `failed()` once the connection is gone.
#[derive(Clone)]
pub struct PcState(watch::Receiver<RTCPeerConnectionState>);

impl PcState {
    pub fn watch(pc: &RTCPeerConnection) -> PcState {
        let (tx, rx) = watch::channel(RTCPeerConnectionState::New);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            tracing::debug!(state = %s, "peer connection state");
            tx.send_replace(s);
            Box::pin(async {})
        }));
        PcState(rx)
    }

    /// Ok once connected; Err with the reason if the connection failed or the timeout passed.
    pub async fn connected(&mut self, timeout: Duration) -> Result<(), String> {
        let wait = self.0.wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        });
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(format!(
                "ICE/DTLS handshake not done within {timeout:?} (webrtcHandshakeTimeout)"
            )),
            Ok(Err(_)) => Err("peer connection dropped".into()),
            Ok(Ok(s)) if *s == RTCPeerConnectionState::Connected => Ok(()),
            Ok(Ok(s)) => Err(format!("peer connection {} during handshake", *s)),
        }
    }

    /// Waits (at most `limit`) until the connection is no longer connecting.
    pub async fn settle(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(
            limit,
            self.0.wait_for(|s| {
                !matches!(
                    s,
                    RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting
                )
            }),
        )
        .await;
    }

    /// Resolves with a reason once the connection is lost (ICE consent gone: disconnected),
    /// failed or closed. Like MediaMTX, a disconnected viewer is not waited for.
    pub async fn ended(&mut self) -> String {
        match self
            .0
            .wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Disconnected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            })
            .await
        {
            Ok(s) => format!("peer connection {}", *s),
            Err(_) => "peer connection dropped".into(),
        }
    }
}
