//! hubcast: a WebRTC media server. RTSP and WHIP in, WHEP (and RTSP) out, one fan-out hub per path.
//!
//! [`Server::start`] runs everything in the current tokio runtime and returns the bound
//! addresses, so tests start the server in-process on ephemeral ports.

pub mod config;
pub mod media;
pub mod path;
pub mod pprof;
pub mod rtsp;
pub mod stats;
pub mod webrtc;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::info;

pub use config::Config;
use path::PathManager;
use rtsp::server::RtspServer;
use webrtc::WebrtcServer;

/// A running server.
pub struct Server {
    pub config: Arc<Config>,
    pub paths: Arc<PathManager>,
    pub webrtc: Option<Arc<WebrtcServer>>,
    pub rtsp: Option<Arc<RtspServer>>,
    pub addrs: Addrs,
    tasks: Vec<JoinHandle<()>>,
}

/// Where the server actually listens (ports may have been 0 in the config).
#[derive(Debug, Clone, Default)]
pub struct Addrs {
    pub rtsp: Option<SocketAddr>,
    pub rtp: Option<SocketAddr>,
    pub rtcp: Option<SocketAddr>,
    pub webrtc_http: Option<SocketAddr>,
    pub webrtc_udp: Option<SocketAddr>,
}

impl Server {
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let config = Arc::new(config);
        let paths = PathManager::new(Arc::clone(&config));
        paths.start_sources();
        let mut addrs = Addrs::default();
        let mut tasks = Vec::new();

        let rtsp = if config.rtsp {
            let (server, bound) =
                RtspServer::start(Arc::clone(&config), Arc::clone(&paths)).await?;
            addrs.rtsp = Some(bound.rtsp);
            addrs.rtp = bound.rtp;
            addrs.rtcp = bound.rtcp;
            info!(rtsp = %bound.rtsp, rtp = ?bound.rtp, rtcp = ?bound.rtcp, "RTSP server listening");
            Some(server)
        } else {
            None
        };

        let webrtc = if config.webrtc {
            let server = WebrtcServer::new(Arc::clone(&config), Arc::clone(&paths)).await?;
            let listener = tokio::net::TcpListener::bind(config.webrtc_address)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "webrtcAddress: cannot listen on {}: {e}",
                        config.webrtc_address
                    )
                })?;
            let http = listener.local_addr()?;
            addrs.webrtc_http = Some(http);
            addrs.webrtc_udp = Some(server.engine.local_addr());
            info!(http = %http, udp = %server.engine.local_addr(), "WebRTC server listening (WHEP at /{{path}}/whep)");
            let app = webrtc::http::router(Arc::clone(&server))
                .into_make_service_with_connect_info::<SocketAddr>();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "WebRTC HTTP server stopped");
                }
            }));
            Some(server)
        } else {
            None
        };

        Ok(Server {
            config,
            paths,
            webrtc,
            rtsp,
            addrs,
            tasks,
        })
    }

    /// Number of live WebRTC sessions.
    pub fn webrtc_sessions(&self) -> usize {
        self.webrtc.as_ref().map_or(0, |w| w.sessions.len())
    }

    /// Closes every WebRTC session and stops the HTTP server.
    pub fn shutdown(&self) {
        if let Some(w) = &self.webrtc {
            w.sessions.close_all("server shutting down");
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}
