//! The RTSP server: listens for TCP connections and receives UDP RTP/RTCP from publishers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::net::{TcpListener, UdpSocket};
use tracing::{debug, info, warn};

use super::conn::Connection;
use crate::config::{Config, RtspTransport};
use crate::path::PathManager;
use crate::stream::ingest::Ingest;

/// Where UDP packets from one client port go: a publisher's RTP to its ingest (`None` for a
/// reader, whose RTCP receiver reports only show it is still there).
#[derive(Clone)]
pub struct UdpRoute {
    pub ingest: Option<Arc<Mutex<Ingest>>>,
    pub media: usize,
    /// Milliseconds since `RtspServer::epoch` of the last packet: the session watchdog reads it.
    pub last_seen: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
#[error("client_port {0} is in use by another RTSP session")]
pub struct RouteTaken(pub SocketAddr);

/// What the control API shows of an RTSP connection and its session.
#[derive(Debug)]
pub struct ConnInfo {
    pub id: String,
    pub created: std::time::SystemTime,
    pub remote: SocketAddr,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub session: Mutex<Option<SessionInfo>>,
    kick: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    /// `idle`, `read` or `publish`.
    pub state: &'static str,
    pub path: String,
    /// `TCP` or `UDP` once set up.
    pub transport: Option<&'static str>,
}

impl ConnInfo {
    /// Resolves when the control API kicked this connection.
    pub fn kicked(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.kick.subscribe();
        async move {
            let _ = rx.wait_for(|k| *k).await;
        }
    }

    pub fn kick(&self) {
        self.kick.send_replace(true);
    }

    pub fn set_session(&self, info: SessionInfo) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
    }

    pub fn session(&self) -> Option<SessionInfo> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub struct RtspServer {
    pub paths: Arc<PathManager>,
    conns: Mutex<HashMap<String, Arc<ConnInfo>>>,
    pub rtp_port: Option<u16>,
    pub rtcp_port: Option<u16>,
    /// Readers over UDP are sent RTP from this socket (the port we announce as server_port).
    pub rtp_socket: Option<Arc<UdpSocket>>,
    routes: Mutex<HashMap<SocketAddr, UdpRoute>>,
    epoch: Instant,
    next_session: AtomicU64,
    limits: Arc<super::limits::ConnLimits>,
}

pub struct Bound {
    pub rtsp: SocketAddr,
    pub rtp: Option<SocketAddr>,
    pub rtcp: Option<SocketAddr>,
}

/// Binds the RTP and RTCP sockets. Clients (retina among them) insist on RTCP = RTP + 1
/// with an even RTP port, so ephemeral ports (0, as in tests) are picked as such a pair.
async fn bind_rtp_pair(
    rtp: SocketAddr,
    rtcp: SocketAddr,
) -> anyhow::Result<(UdpSocket, UdpSocket)> {
    let bind = |addr: SocketAddr, key: &'static str| async move {
        UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("{key}: cannot bind UDP {addr}: {e}"))
    };
    if rtp.port() != 0 || rtcp.port() != 0 {
        return Ok((
            bind(rtp, "rtpAddress").await?,
            bind(rtcp, "rtcpAddress").await?,
        ));
    }
    for _ in 0..100 {
        let r = bind(rtp, "rtpAddress").await?;
        let port = r.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(c) = UdpSocket::bind(SocketAddr::new(rtcp.ip(), port + 1)).await {
            return Ok((r, c));
        }
    }
    anyhow::bail!("rtpAddress/rtcpAddress: found no free pair of adjacent UDP ports")
}

impl RtspServer {
    /// The configuration in force (it may change at run time).
    pub fn config(&self) -> Arc<Config> {
        self.paths.config()
    }

    /// Binds the RTSP listener and (when UDP is enabled) the RTP/RTCP sockets, and starts serving.
    pub async fn start(
        config: Arc<Config>,
        paths: Arc<PathManager>,
    ) -> anyhow::Result<(Arc<RtspServer>, Bound)> {
        let listener = TcpListener::bind(config.rtsp_address).await.map_err(|e| {
            anyhow::anyhow!("rtspAddress: cannot listen on {}: {e}", config.rtsp_address)
        })?;
        let mut rtp = None;
        let mut rtcp = None;
        if config.rtsp_transports.contains(&RtspTransport::Udp) {
            let (r, c) = bind_rtp_pair(config.rtp_address, config.rtcp_address).await?;
            rtp = Some(Arc::new(r));
            rtcp = Some(Arc::new(c));
        }
        let bound = Bound {
            rtsp: listener.local_addr()?,
            rtp: rtp.as_ref().map(|s| s.local_addr()).transpose()?,
            rtcp: rtcp.as_ref().map(|s| s.local_addr()).transpose()?,
        };
        let server = Arc::new(RtspServer {
            paths,
            conns: Mutex::new(HashMap::new()),
            rtp_port: bound.rtp.map(|a| a.port()),
            rtcp_port: bound.rtcp.map(|a| a.port()),
            rtp_socket: rtp.clone(),
            routes: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            next_session: AtomicU64::new(1),
            limits: super::limits::ConnLimits::new(
                super::limits::MAX_CONNECTIONS,
                super::limits::MAX_PER_IP,
            ),
        });
        if let Some(sock) = rtp {
            tokio::spawn(Arc::clone(&server).udp_loop(sock, false));
        }
        if let Some(sock) = rtcp {
            tokio::spawn(Arc::clone(&server).udp_loop(sock, true));
        }
        tokio::spawn(Arc::clone(&server).accept_loop(listener));
        Ok((server, bound))
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let slot = match self.limits.admit(peer.ip()) {
                        Ok(slot) => slot,
                        Err(e) => {
                            debug!(peer = %peer, error = %e, "RTSP connection refused");
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let conn = Connection::new(Arc::clone(&self), peer);
                    tokio::spawn(async move {
                        let _slot = slot;
                        conn.serve(stream).await;
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "RTSP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn udp_loop(self: Arc<Self>, sock: Arc<UdpSocket>, rtcp: bool) {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            buf.clear();
            buf.reserve(64 * 1024);
            let (n, from) = match sock.recv_buf_from(&mut buf).await {
                Ok(v) => v,
                Err(e) => {
                    self.paths
                        .telemetry
                        .udp_errors
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(error = %e, "RTSP UDP receive error");
                    continue;
                }
            };
            // Copied out: a slice of the 64 KiB receive buffer would keep all of it alive in
            // reader queues and the GOP cache for a packet of a few bytes.
            let data = Bytes::copy_from_slice(&buf[..n]);
            // RTCP arrives on the client's RTP port + 1.
            let key = if rtcp {
                SocketAddr::new(from.ip(), from.port().wrapping_sub(1))
            } else {
                from
            };
            let Some(route) = self.route(key) else {
                continue;
            };
            route.last_seen.store(self.now_ms(), Ordering::Relaxed);
            let Some(ingest) = route.ingest.as_ref() else {
                continue;
            };
            let mut ingest = ingest.lock().unwrap_or_else(|p| p.into_inner());
            if rtcp {
                ingest.push_rtcp(&data);
                continue;
            }
            if let Err(e) = ingest.push_rtp(route.media, &data) {
                debug!(path = ingest.hub().path(), error = %e, "dropped UDP RTP packet");
            }
        }
    }

    fn route(&self, from: SocketAddr) -> Option<UdpRoute> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&from)
            .cloned()
    }

    /// Routes UDP from `from` to a session. Refused when another session's route holds
    /// that address (a second connection from the same host naming the same client_port
    /// must not take the first one's packets).
    pub fn add_route(&self, from: SocketAddr, route: UdpRoute) -> Result<(), RouteTaken> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        match routes.get(&from) {
            Some(r) if !Arc::ptr_eq(&r.last_seen, &route.last_seen) => Err(RouteTaken(from)),
            _ => {
                routes.insert(from, route);
                Ok(())
            }
        }
    }

    /// Would `add_route` refuse `from` for the session whose clock is `owner`?
    pub fn route_taken(&self, from: SocketAddr, owner: &Arc<AtomicU64>) -> bool {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes
            .get(&from)
            .is_some_and(|r| !Arc::ptr_eq(&r.last_seen, owner))
    }

    /// Removes the route of `from` if it is the session's own.
    pub fn remove_route(&self, from: &SocketAddr, owner: &Arc<AtomicU64>) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes
            .get(from)
            .is_some_and(|r| Arc::ptr_eq(&r.last_seen, owner))
        {
            routes.remove(from);
        }
    }

    /// Registers a new connection for the control API.
    pub fn register(&self, remote: SocketAddr) -> Arc<ConnInfo> {
        let info = Arc::new(ConnInfo {
            id: crate::util::random_token(),
            created: std::time::SystemTime::now(),
            remote,
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            session: Mutex::new(None),
            kick: tokio::sync::watch::channel(false).0,
        });
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.id.clone(), Arc::clone(&info));
        info
    }

    pub fn unregister(&self, id: &str) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Every open RTSP connection.
    pub fn conns(&self) -> Vec<Arc<ConnInfo>> {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn new_session_id(&self) -> String {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:08x}", rand::random::<u32>(), n as u32)
    }

    pub fn log_session_end(kind: &str, path: &str, peer: SocketAddr, session: &str, reason: &str) {
        info!(path, peer = %peer, session, reason, "RTSP {kind} session ended");
    }
}
