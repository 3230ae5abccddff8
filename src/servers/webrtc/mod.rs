//! WebRTC: WHIP publishers and WHEP readers on hubcast's own transport (one UDP port,
//! ICE-lite, DTLS-SRTP with in-place SRTP).

pub mod admission;
pub mod answer;
pub mod dtls_sniff;
pub mod http;
pub mod sdp;
pub mod session;
pub mod srtp;
pub mod transport;
pub mod whep;
pub mod whip;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tracing::warn;
use webrtc::dtls::conn::DTLSConn;

use crate::config::Config;
use crate::path::{PathError, PathManager};
use crate::stats;
use session::Sessions;
use transport::dtls::{Fingerprint, Role};
use transport::rtcp::Crypto;
use transport::Transport;

/// No packet at all from a peer for this long and it is gone (ICE consent, RFC 7675, counted
/// on everything the peer sends: browsers also send RTCP every second or so).
const CONSENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions one address may have in their handshake at once: a page with a wall of players
/// or a load tool connecting many viewers at once stays under it.
pub const MAX_PENDING_PER_IP: usize = 64;

/// Sender reports to viewers (lip sync) and receiver reports to publishers (their congestion
/// control reads the loss), and the consent check, once a second.
const RTCP_INTERVAL: Duration = Duration::from_secs(1);

pub struct WebrtcServer {
    pub transport: Arc<Transport>,
    pub sessions: Arc<Sessions>,
    pub paths: Arc<PathManager>,
    admissions: Arc<admission::Admissions>,
}

impl Established {
    /// Follows ICE to the address the peer now uses (nomination, NAT rebinding).
    fn follow(&mut self, changed: Result<(), watch::error::RecvError>) {
        if changed.is_ok() {
            if let Some(a) = *self.remote.borrow() {
                self.addr = a;
            }
        }
    }

    /// Unprotects a peer's SRTP packet; one that authenticates is consent (RFC 7675).
    fn unprotect_rtp(&mut self, d: &[u8]) -> Result<Bytes, transport::rtcp::CryptoError> {
        let plain = self.crypto.unprotect_rtp(d)?;
        self.ice.touch();
        Ok(plain)
    }

    /// Unprotects and parses a peer's SRTCP packet; one that authenticates is consent.
    fn unprotect_rtcp(&mut self, d: &[u8]) -> Result<Bytes, transport::rtcp::CryptoError> {
        let packets = self.crypto.unprotect_rtcp(d)?;
        self.ice.touch();
        Ok(packets)
    }

    /// Resolves with the reason once the peer closes DTLS (close_notify or a fatal alert).
    fn hung_up(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let dtls = Arc::clone(&self.dtls);
        async move {
            let mut b = vec![0u8; 1500];
            loop {
                if let Err(e) = dtls.read(&mut b, None).await {
                    return format!("the peer closed the connection (DTLS: {e})");
                }
            }
        }
    }
}

/// Forgets a session and logs its end when its task finishes, however it finishes.
struct SessionCleanup {
    server: Arc<WebrtcServer>,
    session: Arc<session::Session>,
    reason: String,
}

impl Drop for SessionCleanup {
    fn drop(&mut self) {
        let s = &self.session;
        self.server.transport.unregister(&s.ice);
        self.server.sessions.remove(&s.secret);
        tracing::info!(
            path = %s.path, peer = %s.peer, id = %s.id, reason = %self.reason,
            "{} session ended", s.kind.as_str().to_uppercase()
        );
    }
}

/// The text of a caught panic.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// A session whose ICE and DTLS are done.
struct Established {
    socket: Arc<tokio::net::UdpSocket>,
    ice: Arc<transport::Peer>,
    crypto: Crypto,
    dtls: Arc<DTLSConn>,
    remote: watch::Receiver<Option<transport::PeerAddr>>,
    /// Where to send, and from which of our addresses: the ICE-selected pair (updated
    /// from `remote`).
    addr: transport::PeerAddr,
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

pub use crate::util::RETRY_AFTER_SECS;

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
        let transport = Transport::bind(config.webrtc_local_udp_address).await?;
        Ok(Arc::new(WebrtcServer {
            transport,
            sessions: Arc::new(Sessions::default()),
            paths,
            admissions: Arc::default(),
        }))
    }

    /// Runs a session in its own task until `run` returns the reason it ended; then says
    /// goodbye over DTLS, forgets the peer and the session, and logs one line.
    fn spawn_session<F, Fut>(self: &Arc<Self>, session: &Arc<session::Session>, run: F)
    where
        F: FnOnce(Arc<Self>, Arc<session::Session>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = String> + Send + 'static,
    {
        let server = Arc::clone(self);
        let s = Arc::clone(session);
        tokio::spawn(async move {
            // Whatever ends the session, a panic in its code included (a peer's packet that
            // a parser did not expect), its route and entry go; other sessions go on.
            let mut guard = SessionCleanup {
                server: Arc::clone(&server),
                session: Arc::clone(&s),
                reason: "session task cancelled".to_string(),
            };
            let run = std::panic::AssertUnwindSafe(run(Arc::clone(&server), Arc::clone(&s)));
            guard.reason = match futures::FutureExt::catch_unwind(run).await {
                Ok(reason) => reason,
                Err(panic) => {
                    server
                        .paths
                        .telemetry
                        .session_panics
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    format!("internal error: {}", panic_message(&panic))
                }
            };
            s.close_dtls().await;
        });
    }

    /// The DTLS role the offer leaves us, and the `a=setup` that says so.
    fn dtls_role(offer: &sdp::OfferTransport) -> (Role, &'static str) {
        if offer.setup == "passive" {
            (Role::Client, "active")
        } else {
            (Role::Server, "passive")
        }
    }

    /// Registers a new peer with the transport and writes the answer that points it there.
    async fn answer(
        &self,
        offer: &sdp::OfferTransport,
        sections: &[answer::Section<'_>],
    ) -> (Arc<transport::Peer>, transport::PeerRx, String) {
        let (ice, rx) = self.transport.register(&offer.ice_ufrag, &offer.ice_pwd);
        let (_, setup) = Self::dtls_role(offer);
        let candidates = self.candidates().await;
        let text = answer::build(
            &answer::Transport {
                ice_ufrag: &ice.ufrag,
                ice_pwd: &ice.pwd,
                fingerprint: &self.transport.identity.fingerprint,
                setup,
                candidates: &candidates,
            },
            sections,
        );
        (ice, rx, text)
    }

    /// Our host candidates: the bound address, or each interface's when bound to all,
    /// then `webrtcAdditionalHosts`; all on the one UDP port.
    async fn candidates(&self) -> Vec<SocketAddr> {
        let local = self.transport.local_addr();
        let mut ips: Vec<IpAddr> = Vec::new();
        if local.ip().is_unspecified() {
            let all: Vec<IpAddr> = webrtc::util::ifaces::ifaces()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.addr.map(|a| a.ip()))
                .filter(|ip| ip.is_ipv4() == local.is_ipv4() || local.is_ipv6())
                .filter(|ip| !is_link_local(ip))
                .collect();
            ips.extend(all.iter().filter(|ip| !ip.is_loopback()));
            if ips.is_empty() {
                ips.extend(all.iter().filter(|ip| ip.is_loopback()));
            }
        } else {
            ips.push(local.ip());
        }
        for ip in self.additional_hosts().await {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, local.port()))
            .collect()
    }

    /// Waits for ICE and the DTLS handshake (bounded by `webrtcHandshakeTimeout`), checks
    /// the peer's certificate and sets up SRTP; records how long it took or that it failed.
    async fn establish(
        &self,
        session: &session::Session,
        dtls_rx: mpsc::Receiver<Bytes>,
        remote: watch::Receiver<Option<transport::PeerAddr>>,
        offer: &sdp::OfferTransport,
    ) -> Result<Established, String> {
        let config = self.config();
        let timeout = config.webrtc_handshake_timeout;
        let (role, _) = Self::dtls_role(offer);
        let fingerprint = Fingerprint {
            algorithm: offer.fingerprint.0.clone(),
            value: offer.fingerprint.1.clone(),
        };
        let handshake = transport::dtls::handshake(
            Arc::clone(self.transport.socket()),
            dtls_rx,
            remote.clone(),
            role,
            &config.webrtc_srtp_profiles,
            &self.transport.identity,
            &fingerprint,
        );
        let r = match tokio::time::timeout(timeout, handshake).await {
            Err(_) => Err(format!(
                "ICE/DTLS handshake not done within {timeout:?} (webrtcHandshakeTimeout)"
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(secured)) => Crypto::new(&secured.keys)
                .map(|crypto| (secured.conn, crypto))
                .map_err(|e| e.to_string()),
        };
        let t = &self.paths.telemetry;
        t.latencies.record(
            stats::op::ICE_DTLS_CONNECT,
            session.created.elapsed(),
            r.is_ok(),
        );
        let (dtls, crypto) = match r {
            Ok(v) => v,
            Err(e) => {
                t.handshake_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
        };
        session.ice.set_established();
        let _ = session.dtls.set(Arc::clone(&dtls));
        let _ = session.srtp_profile.set(crypto.profile);
        session
            .counters
            .established
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let addr = (*remote.borrow()).ok_or("ICE selected no address")?;
        Ok(Established {
            socket: Arc::clone(self.transport.socket()),
            ice: Arc::clone(&session.ice),
            crypto,
            dtls,
            remote,
            addr,
        })
    }

    /// Err once the peer has sent nothing for `CONSENT_TIMEOUT`.
    fn check_consent(&self, session: &session::Session) -> Result<(), String> {
        let silent = self
            .transport
            .now_ms()
            .saturating_sub(session.ice.last_seen_ms());
        if silent > CONSENT_TIMEOUT.as_millis() as u64 {
            return Err(format!(
                "ICE consent expired: nothing from the peer for {:.1} s",
                silent as f64 / 1000.0
            ));
        }
        Ok(())
    }

    /// Parses an offer and applies `webrtcMaxSessions` and the per-address bound on sessions
    /// still in their handshake: the first steps of every POST.
    /// Parses an offer and checks the server-wide limits. The returned admission counts
    /// toward them until the session exists, across any wait in between.
    fn admit(
        &self,
        offer: &str,
        peer: SocketAddr,
    ) -> Result<(sdp::Offer, admission::Admission), HttpError> {
        let offer = sdp::parse_offer(offer).map_err(|e| HttpError::BadRequest(e.to_string()))?;
        let in_flight = self.admissions.lock();
        let max = self.config().webrtc_max_sessions;
        if max > 0 && self.sessions.len() + in_flight.total() >= max {
            return Err(HttpError::Unavailable(format!(
                "the server has reached webrtcMaxSessions ({max}); retry later"
            )));
        }
        // A session that never does ICE still holds a slot until `webrtcHandshakeTimeout`;
        // one address may hold only a few such at once, so POSTs alone cannot fill the
        // limits.
        let pending = self
            .sessions
            .count(|s| s.peer.ip() == peer.ip() && !s.counters.established.load(Ordering::Relaxed))
            + in_flight.from_ip(peer.ip());
        if pending >= MAX_PENDING_PER_IP {
            return Err(HttpError::Unavailable(format!(
                "{pending} sessions from {} are still in their ICE/DTLS handshake; retry later",
                peer.ip()
            )));
        }
        Ok((offer, in_flight.enter(peer.ip())))
    }

    /// Refuses a reader over the path's `maxReaders`, counting viewers still in their
    /// handshake and offers still being admitted.
    fn check_reader_limit(
        &self,
        path: &str,
        hub: &crate::path::Hub,
        admission: &mut admission::Admission,
    ) -> Result<(), HttpError> {
        let max = self.config().path_conf(path).map_or(0, |c| c.max_readers);
        if max == 0 {
            return Ok(());
        }
        let in_flight = self.admissions.lock();
        let pending = self.sessions.count(|s| {
            s.path == path
                && s.kind == session::SessionKind::Whep
                && !s.counters.established.load(Ordering::Relaxed)
        }) + in_flight.reading(path);
        if hub.reader_count() + pending >= max {
            return Err(HttpError::Unavailable(format!(
                "path '{path}' has reached maxReaders ({max}); retry later"
            )));
        }
        in_flight.read(admission, path);
        Ok(())
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

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}
