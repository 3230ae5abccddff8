//! hubcast: a WebRTC media server. RTSP and WHIP in, WHEP (and RTSP) out, one fan-out hub per path.
//!
//! [`Server::start`] runs everything in the current tokio runtime and returns the bound
//! addresses, so tests start the server in-process on ephemeral ports.

pub mod api;
pub mod auth;
pub mod codec;
pub mod config;
pub mod media;
pub mod path;
pub mod pprof;
pub mod servers;
pub mod sources;
pub mod stats;
pub mod stream;
pub mod util;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::info;

pub use config::Config;
use path::PathManager;
use servers::rtsp::server::RtspServer;
use servers::webrtc::WebrtcServer;

/// A running server.
pub struct Server {
    pub paths: Arc<PathManager>,
    pub api: api::Api,
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
    pub api: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub pprof: Option<SocketAddr>,
}

/// Binds a TCP listener and serves an axum router on it; errors name the config key.
async fn serve(
    key: &str,
    addr: SocketAddr,
    app: axum::Router,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{key}: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let name = key.to_string();
    tasks.push(tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{name} server stopped");
        }
    }));
    Ok(bound)
}

/// Measures how late the runtime wakes a timer: the health check's view of overload.
fn watch_runtime_lag(telemetry: Arc<stats::Telemetry>) -> JoinHandle<()> {
    const TICK: std::time::Duration = std::time::Duration::from_millis(100);
    tokio::spawn(async move {
        loop {
            let started = std::time::Instant::now();
            tokio::time::sleep(TICK).await;
            let lag = started.elapsed().saturating_sub(TICK).as_millis() as u64;
            telemetry
                .runtime_lag_ms
                .store(lag, std::sync::atomic::Ordering::Relaxed);
        }
    })
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
            let app = servers::webrtc::http::router(Arc::clone(&server));
            let http = serve("webrtcAddress", config.webrtc_address, app, &mut tasks).await?;
            addrs.webrtc_http = Some(http);
            addrs.webrtc_udp = Some(server.transport.local_addr());
            info!(http = %http, udp = %server.transport.local_addr(), "WebRTC server listening (WHIP at /{{path}}/whip, WHEP at /{{path}}/whep)");
            Some(server)
        } else {
            None
        };

        let api = api::Api::new(Arc::clone(&paths), webrtc.clone(), rtsp.clone());
        if config.api {
            let a = serve(
                "apiAddress",
                config.api_address,
                api::guarded(
                    api.clone().router(),
                    Arc::clone(&paths),
                    auth::Action::Api,
                    auth::Protocol::Api,
                ),
                &mut tasks,
            )
            .await?;
            info!(api = %a, "control API listening (/v3/...)");
            addrs.api = Some(a);
        }
        if config.metrics {
            let a = serve(
                "metricsAddress",
                config.metrics_address,
                api::guarded(
                    api::metrics::router(api.clone()),
                    Arc::clone(&paths),
                    auth::Action::Metrics,
                    auth::Protocol::Metrics,
                ),
                &mut tasks,
            )
            .await?;
            info!(metrics = %a, "Prometheus metrics listening (/metrics)");
            addrs.metrics = Some(a);
        }
        if config.pprof {
            let a = serve(
                "pprofAddress",
                config.pprof_address,
                api::guarded(
                    pprof::router(),
                    Arc::clone(&paths),
                    auth::Action::Pprof,
                    auth::Protocol::Pprof,
                ),
                &mut tasks,
            )
            .await?;
            info!(pprof = %a, "pprof listening (/debug/pprof/)");
            addrs.pprof = Some(a);
            pprof::activate_heap_profiling_if_requested();
        }
        tasks.push(watch_runtime_lag(Arc::clone(&paths.telemetry)));

        Ok(Server {
            paths,
            api,
            webrtc,
            rtsp,
            addrs,
            tasks,
        })
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.paths.config()
    }

    /// Applies path changes whenever `file` changes (hot reload).
    pub fn watch_config_file(&self, file: std::path::PathBuf) {
        self.api.clone().watch_file(file);
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
