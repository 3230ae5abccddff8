//! WebRTC sessions (WHIP publishers and WHEP readers) and their registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use webrtc::dtls::conn::DTLSConn;

use super::transport::Peer;
use crate::config::SrtpProfile;

/// Long enough for close_notify to leave; a peer that is gone does not answer anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// The remote end as the shared UDP socket knows it.
    pub ice: Arc<Peer>,
    pub counters: Arc<SessionCounters>,
    /// Set once DTLS is up: closed (close_notify) when the session ends.
    pub dtls: OnceLock<Arc<DTLSConn>>,
    pub srtp_profile: OnceLock<SrtpProfile>,
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

    /// Sends close_notify if DTLS is up (bounded: a close that hangs must not keep the
    /// session's task alive).
    pub async fn close_dtls(&self) {
        if let Some(conn) = self.dtls.get() {
            if tokio::time::timeout(CLOSE_TIMEOUT, conn.close())
                .await
                .is_err()
            {
                tracing::debug!(id = %self.id, "DTLS close timed out");
            }
        }
    }

    pub fn location(&self) -> String {
        format!("/{}/{}/{}", self.path, self.kind.as_str(), self.secret)
    }
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
        ice: Arc<Peer>,
        counters: Arc<SessionCounters>,
    ) -> Arc<Session> {
        let s = Arc::new(Session {
            id: crate::util::random_token(),
            secret: crate::util::random_token(),
            kind,
            path: path.to_string(),
            peer,
            etag: format!("\"{}\"", crate::util::random_token()),
            created: Instant::now(),
            created_at: SystemTime::now(),
            ice,
            counters,
            dtls: OnceLock::new(),
            srtp_profile: OnceLock::new(),
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

    /// Sessions for which `f` holds, counted without copying the list.
    pub fn count(&self, f: impl Fn(&Session) -> bool) -> usize {
        self.lock().values().filter(|s| f(s)).count()
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
