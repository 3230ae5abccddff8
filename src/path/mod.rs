//! Paths: a name, its configuration, and at most one live stream (a hub) at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use crate::stream::{Codec, Hub, HubClosed, Packet, Reader, RtpFormat, Track, Unit};

use crate::auth::Auth;
use crate::config::{validate_path_name, Config, PathConf};
use crate::sources::{self, SourceControl, SourceState};
use crate::stats::Telemetry;

fn auth_changed(a: &Config, b: &Config) -> bool {
    a.auth_method != b.auth_method
        || a.auth_internal_users != b.auth_internal_users
        || a.auth_http_address != b.auth_http_address
        || a.auth_http_exclude != b.auth_http_exclude
        || a.auth_jwt_jwks != b.auth_jwt_jwks
        || a.auth_jwt_claim_key != b.auth_jwt_claim_key
        || a.auth_jwt_exclude != b.auth_jwt_exclude
}

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
    /// False while the publisher has not finished its handshake (a WHIP session before
    /// DTLS): such a claim never keeps a path from a publisher that comes next, or a POST
    /// every few seconds would hold it against the real one.
    established: Arc<AtomicBool>,
}

impl Entry {
    fn holds(&self) -> bool {
        self.established.load(Ordering::Acquire) && !self.hub.is_closed()
    }
}

/// A running pulled source.
struct SourceTask {
    ctl: Arc<SourceControl>,
    conf: PathConf,
    task: JoinHandle<()>,
}

/// The configuration in force (it changes at run time through the API and hot reload), every
/// path with a live stream, and every pulled source.
pub struct PathManager {
    config: RwLock<Arc<Config>>,
    paths: Mutex<HashMap<String, Entry>>,
    sources: Mutex<HashMap<String, SourceTask>>,
    pub telemetry: Arc<Telemetry>,
    auth: RwLock<Arc<Auth>>,
}

/// Held by whoever publishes on a path. Dropping it ends the stream.
pub struct Publisher {
    pub hub: Arc<Hub>,
    kicked: watch::Receiver<bool>,
    established: Arc<AtomicBool>,
    manager: Arc<PathManager>,
}

/// Marks a publisher's claim established, from wherever its handshake finishes.
pub struct Claim(Arc<AtomicBool>);

impl Claim {
    /// The handshake is done: from now on `overridePublisher: no` protects the claim.
    pub fn establish(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Publisher {
    pub fn claim(&self) -> Claim {
        Claim(Arc::clone(&self.established))
    }

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
            auth: RwLock::new(Arc::new(Auth::new(&config))),
            config: RwLock::new(config),
            paths: Mutex::new(HashMap::new()),
            sources: Mutex::new(HashMap::new()),
            telemetry: Arc::new(Telemetry::default()),
        })
    }

    /// Who may do what, under the configuration in force.
    pub fn auth(&self) -> Arc<Auth> {
        Arc::clone(&self.auth.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<String, SourceTask>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a task for every configured pulled source (on-demand ones wait for a reader).
    pub fn start_sources(self: &Arc<Self>) {
        let config = self.config();
        for (name, conf) in config.pulled_paths() {
            self.start_source(name, conf);
        }
    }

    fn start_source(self: &Arc<Self>, name: &str, conf: &PathConf) {
        let ctl = SourceControl::new();
        let task = sources::spawn(
            name.to_string(),
            conf.clone(),
            Arc::clone(self),
            Arc::clone(&ctl),
        );
        self.sources().insert(
            name.to_string(),
            SourceTask {
                ctl,
                conf: conf.clone(),
                task,
            },
        );
    }

    pub fn source(&self, name: &str) -> Option<Arc<SourceControl>> {
        self.sources().get(name).map(|s| Arc::clone(&s.ctl))
    }

    /// Every pulled source with its state.
    pub fn source_states(&self) -> Vec<(String, SourceState)> {
        self.sources()
            .iter()
            .map(|(n, s)| (n.clone(), s.ctl.state.borrow().clone()))
            .collect()
    }

    /// Puts a new configuration in force. Paths whose configuration did not change are not
    /// touched; a path that was removed, or whose source changed, loses its stream (its
    /// publisher and readers are closed); pulled sources are stopped and started to match.
    pub fn apply_config(self: &Arc<Self>, new: Arc<Config>) {
        let old = std::mem::replace(
            &mut *self.config.write().unwrap_or_else(|p| p.into_inner()),
            Arc::clone(&new),
        );
        if auth_changed(&old, &new) {
            // A new Auth forgets JWKS cache and failure counts: only when auth itself changed.
            *self.auth.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Auth::new(&new));
        }
        {
            let paths = self.lock();
            for (name, entry) in paths.iter() {
                let before = old.path_conf(name);
                let after = new.path_conf(name);
                let changed = match (before, after) {
                    (Some(b), Some(a)) => b.source != a.source,
                    _ => true,
                };
                if changed {
                    info!(path = %name, "path removed or its source changed: closing its stream");
                    entry.kick.send_replace(true);
                    entry.hub.close();
                }
            }
        }
        let wanted: HashMap<String, PathConf> = new
            .pulled_paths()
            .into_iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect();
        let stale: Vec<String> = self
            .sources()
            .iter()
            .filter(|(n, s)| wanted.get(*n).is_none_or(|w| w.source_differs(&s.conf)))
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some(s) = self.sources().remove(&name) {
                // Dropping the task drops its Publisher: the hub and its readers close.
                s.task.abort();
                info!(path = %name, "pulled source stopped (configuration changed)");
            }
        }
        for (name, conf) in &wanted {
            if !self.sources().contains_key(name) {
                self.start_source(name, conf);
            }
        }
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
        let conf = self.config().path_conf(name).cloned().unwrap_or_default();
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
        Ok(self.insert(&mut paths, name, tracks, true))
    }

    fn insert(
        self: &Arc<Self>,
        paths: &mut HashMap<String, Entry>,
        name: &str,
        tracks: Vec<Track>,
        established: bool,
    ) -> Publisher {
        let hub = Hub::new(name, tracks, self.config().write_queue_size);
        hub.set_telemetry(Arc::clone(&self.telemetry));
        let (kick, kicked) = watch::channel(false);
        let established = Arc::new(AtomicBool::new(established));
        paths.insert(
            name.to_string(),
            Entry {
                hub: Arc::clone(&hub),
                kick,
                established: Arc::clone(&established),
            },
        );
        Publisher {
            hub,
            kicked,
            established,
            manager: Arc::clone(self),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims a path for a publisher with the given tracks. A publisher that is still
    /// handshaking passes `established: false` and calls [`Publisher::establish`] once done.
    pub fn publish(
        self: &Arc<Self>,
        name: &str,
        tracks: Vec<Track>,
        established: bool,
    ) -> Result<Publisher, PathError> {
        validate_path_name(name).map_err(|e| PathError::BadName(e.to_string()))?;
        let config = self.config();
        let conf = config
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
            if old.holds() && !conf.override_publisher {
                return Err(PathError::Busy(name.to_string()));
            }
            old.kick.send_replace(true);
            old.hub.close();
        }
        Ok(self.insert(&mut paths, name, tracks, established))
    }

    /// Does an established publisher hold the path (one that `overridePublisher: no`
    /// protects)? A claim still in its handshake does not count.
    pub fn held(&self, name: &str) -> Result<bool, PathError> {
        validate_path_name(name).map_err(|e| PathError::BadName(e.to_string()))?;
        if self.config().path_conf(name).is_none() {
            return Err(PathError::NotConfigured(name.to_string()));
        }
        Ok(self.lock().get(name).is_some_and(Entry::holds))
    }

    /// The live stream of a path.
    pub fn stream(&self, name: &str) -> Result<Arc<Hub>, PathError> {
        validate_path_name(name).map_err(|e| PathError::BadName(e.to_string()))?;
        if self.config().path_conf(name).is_none() {
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
