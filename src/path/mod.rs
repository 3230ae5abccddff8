//! Paths: a name, its configuration, and at most one live stream (a hub) at a time.

pub mod hub;
pub mod ingest;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use hub::{Codec, Hub, HubClosed, Packet, Reader, Track};

use crate::config::{validate_path_name, Config};
use crate::rtsp::source::{self, SourceControl, SourceState};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("invalid path name: {0}")]
    BadName(String),
    #[error("path '{0}' is not configured")]
    NotConfigured(String),
    #[error("path '{0}' already has a publisher (set overridePublisher: yes to let a new one take over)")]
    Busy(String),
    #[error("no stream is available on path '{0}'")]
    NoStream(String),
    #[error("path '{0}' does not accept publishers (its source is {1})")]
    NotPublishable(String, String),
    #[error("the source of path '{0}' is not ready: {1}")]
    SourceNotReady(String, String),
}

struct Entry {
    hub: Arc<Hub>,
    /// Set to true to tell the current publisher it has been replaced.
    kick: watch::Sender<bool>,
}

/// All paths with a live stream.
pub struct PathManager {
    config: Arc<Config>,
    paths: Mutex<HashMap<String, Entry>>,
    /// Pulled sources by path name.
    sources: Mutex<HashMap<String, Arc<SourceControl>>>,
}

/// Held by whoever publishes on a path. Dropping it ends the stream.
pub struct Publisher {
    pub hub: Arc<Hub>,
    kicked: watch::Receiver<bool>,
    manager: Arc<PathManager>,
}

impl Publisher {
    /// Resolves when another publisher took over this path.
    pub async fn kicked(&mut self) {
        let _ = self.kicked.wait_for(|k| *k).await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.hub.close();
        self.manager.release(&self.hub);
    }
}

impl PathManager {
    pub fn new(config: Arc<Config>) -> Arc<Self> {
        Arc::new(PathManager {
            config,
            paths: Mutex::new(HashMap::new()),
            sources: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a task for every configured pulled source (on-demand ones wait for a reader).
    pub fn start_sources(self: &Arc<Self>) {
        for (name, conf) in self.config.pulled_paths() {
            let ctl = SourceControl::new();
            self.sources
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), Arc::clone(&ctl));
            tokio::spawn(source::run(
                name.to_string(),
                conf.clone(),
                Arc::clone(self),
                ctl,
            ));
        }
    }

    pub fn source(&self, name: &str) -> Option<Arc<SourceControl>> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The live stream of a path; for an on-demand source, starts it and waits up to
    /// `sourceOnDemandStartTimeout` for it to be ready.
    pub async fn wait_stream(&self, name: &str) -> Result<Arc<Hub>, PathError> {
        match self.stream(name) {
            Err(PathError::NoStream(_)) => {}
            other => return other,
        }
        let Some(ctl) = self.source(name) else {
            return Err(PathError::NoStream(name.to_string()));
        };
        let conf = self.config.path_conf(name).cloned().unwrap_or_default();
        let mut state = ctl.state.subscribe();
        if conf.source_on_demand {
            ctl.demand.send_modify(|n| *n = n.wrapping_add(1));
            let ready = tokio::time::timeout(
                conf.source_on_demand_start_timeout,
                state.wait_for(|s| *s == SourceState::Ready),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if !ready {
                let reason = match &*state.borrow() {
                    SourceState::Failed(r) => r.clone(),
                    _ => format!(
                        "not ready within sourceOnDemandStartTimeout ({:?})",
                        conf.source_on_demand_start_timeout
                    ),
                };
                return Err(PathError::SourceNotReady(name.to_string(), reason));
            }
        }
        self.stream(name).map_err(|e| match &*state.borrow() {
            SourceState::Failed(r) => PathError::SourceNotReady(name.to_string(), r.clone()),
            _ => e,
        })
    }

    /// Claims a path for its pulled source (no publisher rules apply).
    pub fn publish_source(
        self: &Arc<Self>,
        name: &str,
        tracks: Vec<Track>,
    ) -> Result<Publisher, PathError> {
        let mut paths = self.lock();
        if let Some(old) = paths.get(name) {
            old.kick.send_replace(true);
            old.hub.close();
        }
        Ok(self.insert(&mut paths, name, tracks))
    }

    fn insert(
        self: &Arc<Self>,
        paths: &mut HashMap<String, Entry>,
        name: &str,
        tracks: Vec<Track>,
    ) -> Publisher {
        let hub = Hub::new(name, tracks, self.config.write_queue_size);
        let (kick, kicked) = watch::channel(false);
        paths.insert(
            name.to_string(),
            Entry {
                hub: Arc::clone(&hub),
                kick,
            },
        );
        Publisher {
            hub,
            kicked,
            manager: Arc::clone(self),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims a path for a publisher with the given tracks.
    pub fn publish(
        self: &Arc<Self>,
        name: &str,
        tracks: Vec<Track>,
    ) -> Result<Publisher, PathError> {
        validate_path_name(name).map_err(|e| PathError::BadName(e.to_string()))?;
        let conf = self
            .config
            .path_conf(name)
            .ok_or_else(|| PathError::NotConfigured(name.to_string()))?;
        if conf.source != "publisher" {
            return Err(PathError::NotPublishable(
                name.to_string(),
                conf.source.clone(),
            ));
        }
        let mut paths = self.lock();
        if let Some(old) = paths.get(name) {
            if !old.hub.is_closed() && !conf.override_publisher {
                return Err(PathError::Busy(name.to_string()));
            }
            old.kick.send_replace(true);
            old.hub.close();
        }
        Ok(self.insert(&mut paths, name, tracks))
    }

    /// The live stream of a path.
    pub fn stream(&self, name: &str) -> Result<Arc<Hub>, PathError> {
        validate_path_name(name).map_err(|e| PathError::BadName(e.to_string()))?;
        if self.config.path_conf(name).is_none() {
            return Err(PathError::NotConfigured(name.to_string()));
        }
        match self.lock().get(name) {
            Some(e) if !e.hub.is_closed() => Ok(Arc::clone(&e.hub)),
            _ => Err(PathError::NoStream(name.to_string())),
        }
    }

    /// Names and hubs of every live stream.
    pub fn streams(&self) -> Vec<(String, Arc<Hub>)> {
        self.lock()
            .iter()
            .filter(|(_, e)| !e.hub.is_closed())
            .map(|(n, e)| (n.clone(), Arc::clone(&e.hub)))
            .collect()
    }

    fn release(&self, hub: &Arc<Hub>) {
        let mut paths = self.lock();
        if let Some(e) = paths.get(hub.path()) {
            // A newer publisher may hold the path already; only remove our own entry.
            if Arc::ptr_eq(&e.hub, hub) {
                paths.remove(hub.path());
            }
        }
    }
}
