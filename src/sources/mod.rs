//! Pulled sources: a path whose `source` is a URL gets a task that reads it and publishes
//! on the path, at once or on demand, reconnecting. The URL's scheme picks the reader, as
//! MediaMTX's static sources do; `rtsp://` and `rtsps://` (with `retina`) are the ones
//! there are.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::config::PathConf;
use crate::path::PathManager;

pub mod rtsp;

/// What the rest of the server sees of a pulled source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// On demand and nobody asked yet (or released after the last reader).
    Idle,
    Connecting,
    Ready,
    /// The last attempt failed; retrying.
    Failed(String),
}

/// Control of one pulled path, shared with the path manager.
pub struct SourceControl {
    pub state: watch::Sender<SourceState>,
    /// Bumped by readers of an on-demand path: "someone wants this stream".
    pub demand: watch::Sender<u64>,
    demand_rx: std::sync::Mutex<Option<watch::Receiver<u64>>>,
}

impl SourceControl {
    pub fn new() -> Arc<Self> {
        let (demand, demand_rx) = watch::channel(0);
        Arc::new(SourceControl {
            state: watch::channel(SourceState::Idle).0,
            demand,
            demand_rx: std::sync::Mutex::new(Some(demand_rx)),
        })
    }

    /// The source task's end of `demand` (once).
    pub(crate) fn take_demand(&self) -> Option<watch::Receiver<u64>> {
        self.demand_rx.lock().ok()?.take()
    }
}

/// Starts the task that reads `conf`'s source URL for path `path`.
pub fn spawn(
    path: String,
    conf: PathConf,
    paths: Arc<PathManager>,
    ctl: Arc<SourceControl>,
) -> JoinHandle<()> {
    let scheme = conf
        .source_url()
        .and_then(|u| u.split_once("://"))
        .map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("rtsp" | "rtsps") => tokio::spawn(rtsp::run(path, conf, paths, ctl)),
        other => {
            let why = format!("no reader for sources of scheme {other:?}");
            warn!(path, "{why}");
            ctl.state.send_replace(SourceState::Failed(why));
            tokio::spawn(async {})
        }
    }
}
