//! WebRTC: WHEP readers (and later WHIP publishers) over one shared UDP port.

pub mod dtls_sniff;
pub mod engine;
pub mod http;
pub mod sdp;
pub mod session;
pub mod srtp;
pub mod whep;
pub mod whip;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

use crate::config::Config;
use crate::path::{PathError, PathManager};
use crate::stats;
use engine::Engine;
use session::Sessions;

pub struct WebrtcServer {
    pub engine: Engine,
    pub sessions: Arc<Sessions>,
    pub paths: Arc<PathManager>,
}

/// An HTTP-facing error: each maps to a status and a plain-text reason.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed here; allowed: {0}")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Internal(String),
    /// Credentials missing or refused: 401 with these `WWW-Authenticate` challenges.
    #[error("{}", .0.message)]
    Unauthorized(crate::auth::gate::Refusal),
    /// Over a limit (`maxReaders`, `webrtcMaxSessions`): the client may retry later.
    #[error("{0}")]
    Unavailable(String),
}

/// Seconds a client refused for load should wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 5;

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::NotFound(_) => 404,
            HttpError::MethodNotAllowed(_) => 405,
            HttpError::NotAcceptable(_) => 406,
            HttpError::Conflict(_) => 409,
            HttpError::PreconditionFailed(_) => 412,
            HttpError::UnsupportedMediaType(_) => 415,
            HttpError::Internal(_) => 500,
            HttpError::Unavailable(_) => 503,
            HttpError::Unauthorized(_) => 401,
        }
    }
}

impl From<PathError> for HttpError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::BadName(_) => HttpError::BadRequest(e.to_string()),
            PathError::NotConfigured(_)
            | PathError::NoStream(_)
            | PathError::SourceNotReady(..) => HttpError::NotFound(e.to_string()),
            PathError::Busy(_) | PathError::NotPublishable(..) => {
                HttpError::Conflict(e.to_string())
            }
        }
    }
}

impl WebrtcServer {
    pub async fn new(config: Arc<Config>, paths: Arc<PathManager>) -> anyhow::Result<Arc<Self>> {
        let engine = Engine::bind(&config).await?;
        Ok(Arc::new(WebrtcServer {
            engine,
            sessions: Arc::new(Sessions::default()),
            paths,
        }))
    }
}

/// Longest we wait for our own candidates; the muxed host candidates come at once.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies an offer, without the feedback we do not implement.
async fn set_offer(pc: &RTCPeerConnection, offer: &str) -> Result<(), HttpError> {
    let offer = RTCSessionDescription::offer(sdp::strip_bare_nack(offer))
        .map_err(|e| HttpError::BadRequest(format!("invalid offer: {e}")))?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| HttpError::BadRequest(format!("offer refused: {e}")))
}

/// Creates the answer and waits for our candidates: WHIP/WHEP servers answer with all of
/// them at once instead of trickling.
async fn complete_answer(pc: &RTCPeerConnection) -> Result<String, HttpError> {
    let answer = pc
        .create_answer(None)
        .await
        .map_err(|e| HttpError::Internal(format!("create answer: {e}")))?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(answer)
        .await
        .map_err(|e| HttpError::Internal(format!("set local description: {e}")))?;
    let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await;
    Ok(pc
        .local_description()
        .await
        .ok_or_else(|| HttpError::Internal("no local description".into()))?
        .sdp)
}

impl WebrtcServer {
    /// Runs a session in its own task until `run` returns the reason it ended; then closes
    /// the peer connection, forgets the session and logs one line.
    fn spawn_session<F, Fut>(
        self: &Arc<Self>,
        session: &Arc<session::Session>,
        state: session::PcState,
        run: F,
    ) where
        F: FnOnce(Arc<Self>, Arc<session::Session>, session::PcState) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = String> + Send + 'static,
    {
        let server = Arc::clone(self);
        let s = Arc::clone(session);
        tokio::spawn(async move {
            let settle = state.clone();
            let reason = run(Arc::clone(&server), Arc::clone(&s), state).await;
            s.close_pc(settle).await;
            server.sessions.remove(&s.secret);
            tracing::info!(
                path = %s.path, peer = %s.peer, id = %s.id, reason = %reason,
                "{} session ended", s.kind.as_str().to_uppercase()
            );
        });
    }

    /// A peer connection restricted to one session's codecs, and a watch on its state
    /// (set up before negotiation so no transition is missed).
    async fn new_peer_connection(
        &self,
        codecs: &engine::SessionCodecs,
    ) -> Result<(Arc<RTCPeerConnection>, session::PcState), HttpError> {
        let api = self
            .engine
            .api(codecs, &self.config().webrtc_srtp_profiles)
            .map_err(|e| HttpError::Internal(format!("media engine: {e}")))?;
        let pc = api
            .new_peer_connection(Default::default())
            .await
            .map_err(|e| HttpError::Internal(format!("peer connection: {e}")))?;
        let state = session::PcState::watch(&pc);
        Ok((Arc::new(pc), state))
    }

    /// Refuses a new session over `webrtcMaxSessions`.
    fn check_session_limit(&self) -> Result<(), HttpError> {
        let max = self.config().webrtc_max_sessions;
        if max > 0 && self.sessions.len() >= max {
            return Err(HttpError::Unavailable(format!(
                "the server has reached webrtcMaxSessions ({max}); retry later"
            )));
        }
        Ok(())
    }

    /// Refuses a new reader over the path's `maxReaders`. Sessions still in their handshake
    /// count: they become readers in a moment.
    fn check_reader_limit(&self, path: &str, hub: &crate::path::Hub) -> Result<(), HttpError> {
        let max = self.config().path_conf(path).map_or(0, |c| c.max_readers);
        if max == 0 {
            return Ok(());
        }
        let pending = self
            .sessions
            .all()
            .iter()
            .filter(|s| {
                s.path == path
                    && s.kind == session::SessionKind::Whep
                    && !s
                        .counters
                        .established
                        .load(std::sync::atomic::Ordering::Relaxed)
            })
            .count();
        if hub.reader_count() + pending >= max {
            return Err(HttpError::Unavailable(format!(
                "path '{path}' has reached maxReaders ({max}); retry later"
            )));
        }
        Ok(())
    }

    /// Waits for ICE+DTLS and records how long it took (or that it failed).
    async fn handshake(
        &self,
        session: &session::Session,
        state: &mut session::PcState,
        timeout: Duration,
    ) -> Result<(), String> {
        let r = state.connected(timeout).await;
        let t = &self.paths.telemetry;
        t.latencies.record(
            stats::op::ICE_DTLS_CONNECT,
            session.created.elapsed(),
            r.is_ok(),
        );
        match &r {
            Ok(()) => session
                .counters
                .established
                .store(true, std::sync::atomic::Ordering::Relaxed),
            Err(_) => {
                t.handshake_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        r
    }

    /// The configuration in force (it may change at run time).
    pub fn config(&self) -> Arc<Config> {
        self.paths.config()
    }

    /// `webrtcAdditionalHosts` as IPs; names are resolved on each use so DNS changes apply.
    async fn additional_hosts(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for host in &self.config().webrtc_additional_hosts {
            if let Ok(ip) = host.parse() {
                out.push(ip);
                continue;
            }
            match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => out.extend(addrs.map(|a| a.ip())),
                Err(e) => warn!(host, error = %e, "webrtcAdditionalHosts: cannot resolve"),
            }
        }
        out
    }
}
