//! The control API (MediaMTX v3 shapes), health, latency statistics, and the Prometheus
//! endpoint. Path configuration changes take effect at once through
//! [`PathManager::apply_config`], the same way a hot reload of the file does.

pub mod browser_guard;
pub mod json;
pub mod metrics;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use crate::config::{validate_path_name, Config};
use crate::path::PathManager;
use crate::servers::rtsp::server::RtspServer;
use crate::servers::webrtc::WebrtcServer;
use crate::sources::SourceState;

/// Everything the API looks at.
#[derive(Clone)]
pub struct Api {
    pub paths: Arc<PathManager>,
    pub webrtc: Option<Arc<WebrtcServer>>,
    pub rtsp: Option<Arc<RtspServer>>,
    /// Serializes configuration writes (API and hot reload).
    write: Arc<tokio::sync::Mutex<()>>,
    health: Arc<std::sync::Mutex<HealthMemory>>,
}

/// A JSON error with a status: `{"error": "..."}` like MediaMTX.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("{what} not found"))
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult = Result<Json<Value>, ApiError>;

impl Api {
    pub fn new(
        paths: Arc<PathManager>,
        webrtc: Option<Arc<WebrtcServer>>,
        rtsp: Option<Arc<RtspServer>>,
    ) -> Api {
        Api {
            paths,
            webrtc,
            rtsp,
            write: Arc::default(),
            health: Arc::default(),
        }
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/v3/paths/list", get(paths_list))
            .route("/v3/paths/get/{*name}", get(paths_get))
            .route("/v3/webrtcsessions/list", get(webrtc_list))
            .route("/v3/webrtcsessions/get/{id}", get(webrtc_get))
            .route("/v3/webrtcsessions/kick/{id}", post(webrtc_kick))
            .route("/v3/rtspsessions/list", get(rtsp_sessions_list))
            .route("/v3/rtspsessions/get/{id}", get(rtsp_sessions_get))
            .route("/v3/rtspsessions/kick/{id}", post(rtsp_sessions_kick))
            .route("/v3/rtspconns/list", get(rtsp_conns_list))
            .route("/v3/rtspconns/get/{id}", get(rtsp_conns_get))
            .route("/v3/config/global/get", get(config_global_get))
            .route("/v3/config/global/patch", patch(config_global_patch))
            .route("/v3/config/paths/list", get(config_paths_list))
            .route("/v3/config/paths/get/{*name}", get(config_paths_get))
            .route("/v3/config/paths/add/{*name}", post(config_paths_add))
            .route("/v3/config/paths/patch/{*name}", patch(config_paths_patch))
            .route(
                "/v3/config/paths/delete/{*name}",
                delete(config_paths_delete),
            )
            .route("/v3/metrics/performance", get(performance))
            .route("/v3/health", get(health))
            .fallback(|| async { not_found("endpoint") })
            .with_state(self)
    }

    /// Puts a new configuration in force (API writes and hot reload share this).
    fn apply(&self, new: Config) {
        self.paths.apply_config(Arc::new(new));
    }

    /// Re-reads the config file every 2 s and applies path changes (hot reload).
    pub fn watch_file(self, file: PathBuf) {
        tokio::spawn(async move {
            let modified = |f: &PathBuf| std::fs::metadata(f).and_then(|m| m.modified()).ok();
            let mut last = modified(&file);
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let now = modified(&file);
                if now == last {
                    continue;
                }
                last = now;
                let _guard = self.write.lock().await;
                match Config::load(&file) {
                    Ok(c) => {
                        info!(file = %file.display(), "configuration file changed: applying");
                        self.apply(c);
                    }
                    Err(e) => {
                        warn!(error = %e, "configuration file changed but is invalid: keeping the running configuration")
                    }
                }
            }
        });
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(rename = "itemsPerPage")]
    items_per_page: Option<String>,
    page: Option<String>,
}

/// MediaMTX list shape with pagination.
fn paginate(items: Vec<Value>, q: &Page) -> ApiResult {
    let per = match &q.items_per_page {
        None => 100,
        Some(s) => s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            bad_request(format!(
                "itemsPerPage must be a positive integer, got {s:?}"
            ))
        })?,
    };
    let page = match &q.page {
        None => 0,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad_request(format!("page must be an integer >= 0, got {s:?}")))?,
    };
    let count = items.len();
    let page_items: Vec<Value> = items
        .into_iter()
        .skip(page.saturating_mul(per))
        .take(per)
        .collect();
    Ok(Json(json!({
        "pageCount": count.div_ceil(per),
        "itemCount": count,
        "items": page_items,
    })))
}

// ---- paths ------------------------------------------------------------------------------

fn path_item(api: &Api, name: &str) -> Option<Value> {
    let config = api.paths.config();
    let conf_name = config
        .paths
        .iter()
        .find(|(n, _)| n == name)
        .map(|(n, _)| n.clone())
        .or_else(|| {
            config.path_conf(name).and_then(|c| {
                config
                    .paths
                    .iter()
                    .find(|(_, p)| std::ptr::eq(p, c))
                    .map(|(n, _)| n.clone())
            })
        })?;
    let hub = api.paths.stream(name).ok();
    // Like MediaMTX: a name only matched by `all_others` or a regex is not a path until
    // something publishes on it.
    if hub.is_none() && !config.paths.iter().any(|(n, _)| n == name) {
        return None;
    }
    let source_error = api
        .paths
        .source(name)
        .and_then(|ctl| match &*ctl.state.borrow() {
            SourceState::Failed(r) => Some(r.clone()),
            _ => None,
        });
    let stats =
        |f: fn(&crate::stream::hub::HubStats) -> u64| hub.as_ref().map_or(0, |h| f(&h.stats));
    Some(json!({
        "name": name,
        "confName": conf_name,
        "source": hub.as_ref().and_then(|h| h.source_label()).map(|l| json!({"type": l.kind, "id": l.id})),
        "ready": hub.is_some(),
        "readyTime": hub.as_ref().map(|h| json::rfc3339(h.created())),
        "tracks": hub.as_ref().map_or(vec![], |h| h.tracks().iter().map(crate::codec::Track::api_name).collect()),
        "bytesReceived": stats(|s| s.bytes_in.load(std::sync::atomic::Ordering::Relaxed)),
        "bytesSent": stats(|s| s.bytes_out.load(std::sync::atomic::Ordering::Relaxed)),
        "readers": hub.as_ref().map_or(vec![], |h| h.readers().into_iter().map(|r| json!({"type": r.kind, "id": r.id})).collect()),
        "sourceError": source_error,
    }))
}

/// Fixed-name configured paths and every path with a live stream.
fn path_names(api: &Api) -> Vec<String> {
    let config = api.paths.config();
    let mut names: Vec<String> = config
        .paths
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !n.starts_with('~') && n != "all_others" && n != "all")
        .collect();
    for (n, _) in api.paths.streams() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.sort();
    names
}

async fn paths_list(State(api): State<Api>, Query(q): Query<Page>) -> ApiResult {
    let items = path_names(&api)
        .iter()
        .filter_map(|n| path_item(&api, n))
        .collect();
    paginate(items, &q)
}

async fn paths_get(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    validate_path_name(&name).map_err(|e| bad_request(e.to_string()))?;
    path_item(&api, &name)
        .map(Json)
        .ok_or_else(|| not_found("path"))
}

// ---- WebRTC sessions ---------------------------------------------------------------------

fn webrtc_item(s: &crate::servers::webrtc::session::Session) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &s.counters;
    json!({
        "id": s.id,
        "created": json::rfc3339(s.created_at),
        "remoteAddr": s.peer.to_string(),
        "peerConnectionEstablished": c.established.load(Relaxed),
        "state": match s.kind { crate::servers::webrtc::session::SessionKind::Whip => "publish", _ => "read" },
        "path": s.path,
        "bytesReceived": c.bytes_received.load(Relaxed),
        "bytesSent": c.bytes_sent.load(Relaxed),
        "rtpPacketsReceived": c.packets_received.load(Relaxed),
        "rtpPacketsSent": c.packets_sent.load(Relaxed),
    })
}

fn webrtc_server(api: &Api) -> Result<&Arc<WebrtcServer>, ApiError> {
    api.webrtc
        .as_ref()
        .ok_or_else(|| not_found("WebRTC server (webrtc: no)"))
}

async fn webrtc_list(State(api): State<Api>, Query(q): Query<Page>) -> ApiResult {
    let mut sessions = webrtc_server(&api)?.sessions.all();
    sessions.sort_by_key(|s| s.created);
    paginate(sessions.iter().map(|s| webrtc_item(s)).collect(), &q)
}

async fn webrtc_get(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let s = webrtc_server(&api)?
        .sessions
        .by_id(&id)
        .ok_or_else(|| not_found("session"))?;
    Ok(Json(webrtc_item(&s)))
}

async fn webrtc_kick(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let server = webrtc_server(&api)?;
    let s = server
        .sessions
        .by_id(&id)
        .ok_or_else(|| not_found("session"))?;
    s.close("kicked via the control API");
    server.sessions.remove(&s.secret);
    Ok(Json(json!({})))
}

// ---- RTSP sessions and connections -------------------------------------------------------

fn rtsp_server(api: &Api) -> Result<&Arc<RtspServer>, ApiError> {
    api.rtsp
        .as_ref()
        .ok_or_else(|| not_found("RTSP server (rtsp: no)"))
}

fn conn_item(c: &crate::servers::rtsp::server::ConnInfo) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    json!({
        "id": c.id,
        "created": json::rfc3339(c.created),
        "remoteAddr": c.remote.to_string(),
        "bytesReceived": c.bytes_received.load(Relaxed),
        "bytesSent": c.bytes_sent.load(Relaxed),
        "session": c.session().map(|s| s.id),
    })
}

fn session_item(c: &crate::servers::rtsp::server::ConnInfo) -> Option<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let s = c.session()?;
    Some(json!({
        "id": s.id,
        "created": json::rfc3339(c.created),
        "remoteAddr": c.remote.to_string(),
        "state": s.state,
        "path": s.path,
        "transport": s.transport,
        "bytesReceived": c.bytes_received.load(Relaxed),
        "bytesSent": c.bytes_sent.load(Relaxed),
    }))
}

async fn rtsp_conns_list(State(api): State<Api>, Query(q): Query<Page>) -> ApiResult {
    let mut conns = rtsp_server(&api)?.conns();
    conns.sort_by_key(|c| c.created);
    paginate(conns.iter().map(|c| conn_item(c)).collect(), &q)
}

async fn rtsp_conns_get(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let conns = rtsp_server(&api)?.conns();
    let c = conns
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| not_found("connection"))?;
    Ok(Json(conn_item(c)))
}

fn find_session(
    api: &Api,
    id: &str,
) -> Result<Arc<crate::servers::rtsp::server::ConnInfo>, ApiError> {
    rtsp_server(api)?
        .conns()
        .into_iter()
        .find(|c| c.session().is_some_and(|s| s.id == id))
        .ok_or_else(|| not_found("session"))
}

async fn rtsp_sessions_list(State(api): State<Api>, Query(q): Query<Page>) -> ApiResult {
    let mut conns = rtsp_server(&api)?.conns();
    conns.sort_by_key(|c| c.created);
    paginate(conns.iter().filter_map(|c| session_item(c)).collect(), &q)
}

async fn rtsp_sessions_get(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let c = find_session(&api, &id)?;
    session_item(&c)
        .map(Json)
        .ok_or_else(|| not_found("session"))
}

async fn rtsp_sessions_kick(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    find_session(&api, &id)?.kick();
    Ok(Json(json!({})))
}

// ---- configuration -----------------------------------------------------------------------

async fn config_global_get(State(api): State<Api>) -> ApiResult {
    Ok(Json(Value::Object(json::global(&api.paths.config()))))
}

/// The body of a PATCH/POST as a JSON object, with a 400 that says what is wrong.
fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("the body must be a JSON object")),
        Err(e) => Err(bad_request(format!("invalid JSON: {e}"))),
    }
}

fn load_over(current: &Config, m: Map<String, Value>) -> Result<Config, ApiError> {
    json::load_over(current, m).map_err(|e| bad_request(e.to_string()))
}

async fn config_global_patch(State(api): State<Api>, body: axum::body::Bytes) -> ApiResult {
    let patch = object(&body)?;
    if patch.contains_key("paths") || patch.contains_key("pathDefaults") {
        return Err(bad_request("paths are changed with /v3/config/paths/..."));
    }
    if let Some(key) = patch.keys().find(|k| json::is_auth_key(k)) {
        return Err(bad_request(format!(
            "{key}: authentication settings are changed in the config file only, not through the API"
        )));
    }
    let _guard = api.write.lock().await;
    let current = api.paths.config();
    let before = json::global(&current);
    let mut m = json::full(&current);
    for (k, v) in patch {
        m.insert(k, v);
    }
    let new = load_over(&current, m)?;
    let after = json::global(&new);
    for key in json::RESTART_KEYS {
        if before.get(key) != after.get(key) {
            return Err(bad_request(format!(
                "{key} cannot change at run time (it needs a new listener): edit the config file and restart"
            )));
        }
    }
    api.apply(new);
    Ok(Json(json!({})))
}

async fn config_paths_list(State(api): State<Api>, Query(q): Query<Page>) -> ApiResult {
    let config = api.paths.config();
    let items = config
        .paths
        .iter()
        .map(|(n, p)| {
            let mut m = json::path_conf(p);
            m.insert("name".into(), json!(n));
            Value::Object(m)
        })
        .collect();
    paginate(items, &q)
}

async fn config_paths_get(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let config = api.paths.config();
    let (n, p) = config
        .paths
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| not_found("path configuration"))?;
    let mut m = json::path_conf(p);
    m.insert("name".into(), json!(n));
    Ok(Json(Value::Object(m)))
}

/// Runs `edit` on the JSON `paths` object of the current configuration and applies the result.
async fn edit_paths(
    api: &Api,
    edit: impl FnOnce(&mut Map<String, Value>) -> Result<(), ApiError>,
) -> ApiResult {
    let _guard = api.write.lock().await;
    let current = api.paths.config();
    let mut m = json::full(&current);
    let mut paths = match m.remove("paths") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    edit(&mut paths)?;
    m.insert("paths".into(), Value::Object(paths));
    api.apply(load_over(&current, m)?);
    Ok(Json(json!({})))
}

fn check_conf_name(name: &str) -> Result<(), ApiError> {
    if name.starts_with('~') || name == "all_others" || name == "all" {
        return Ok(());
    }
    validate_path_name(name).map_err(|e| bad_request(e.to_string()))
}

async fn config_paths_add(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    check_conf_name(&name)?;
    let conf = if body.is_empty() {
        Map::new()
    } else {
        object(&body)?
    };
    edit_paths(&api, |paths| {
        if paths.contains_key(&name) {
            return Err(bad_request(format!("path {name:?} already exists")));
        }
        // New paths go first: a fixed name must win over `all_others` whatever the order.
        let mut reordered = Map::new();
        reordered.insert(name.clone(), Value::Object(conf));
        reordered.append(paths);
        *paths = reordered;
        Ok(())
    })
    .await
}

async fn config_paths_patch(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let patch = object(&body)?;
    edit_paths(&api, |paths| {
        let Some(Value::Object(conf)) = paths.get_mut(&name) else {
            return Err(not_found("path configuration"));
        };
        for (k, v) in patch {
            conf.insert(k, v);
        }
        Ok(())
    })
    .await
}

async fn config_paths_delete(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    edit_paths(&api, |paths| {
        paths
            .shift_remove(&name)
            .map(|_| ())
            .ok_or_else(|| not_found("path configuration"))
    })
    .await
}

// ---- latency statistics and health -------------------------------------------------------

#[derive(Deserialize)]
struct PerfQuery {
    operation: Option<String>,
    window: Option<String>,
}

async fn performance(State(api): State<Api>, Query(q): Query<PerfQuery>) -> ApiResult {
    let window = match &q.window {
        None => None,
        Some(w) => Some(
            w.parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    bad_request(format!("window must be a number of seconds > 0, got {w:?}"))
                })?,
        ),
    };
    let lat = &api.paths.telemetry.latencies;
    match q.operation {
        Some(op) => {
            if !crate::stats::op::ALL.contains(&op.as_str()) {
                return Err(not_found(&format!(
                    "operation {op:?} (known: {})",
                    crate::stats::op::ALL.join(", ")
                )));
            }
            let s = lat
                .summary(&op, window)
                .unwrap_or_else(|| crate::stats::Summary::empty(&op, window));
            Ok(Json(serde_json::to_value(s).unwrap_or(Value::Null)))
        }
        None => {
            let all: Vec<Value> = crate::stats::op::ALL
                .iter()
                .map(|op| {
                    lat.summary(op, window)
                        .unwrap_or_else(|| crate::stats::Summary::empty(op, window))
                })
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect();
            Ok(Json(json!({ "items": all })))
        }
    }
}

/// What the last health check saw, to tell new drops and errors from old ones.
#[derive(Default)]
struct HealthMemory {
    dropped: std::collections::HashMap<String, (u64, Instant)>,
    udp_errors: (u64, Option<Instant>),
}

/// How long a new packet drop or socket error keeps the server `degraded`.
const HEALTH_MEMORY: Duration = Duration::from_secs(60);

async fn health(State(api): State<Api>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let mut issues = Vec::new();
    let mut unhealthy = false;
    for (name, state) in api.paths.source_states() {
        if let SourceState::Failed(reason) = state {
            issues.push(format!("path {name}: pulled source failing: {reason}"));
        }
    }
    {
        let mut mem = api.health.lock().unwrap_or_else(|p| p.into_inner());
        let streams = api.paths.streams();
        // Only live streams are remembered: names come and go with publishers.
        mem.dropped
            .retain(|name, _| streams.iter().any(|(n, _)| n == name));
        for (name, hub) in streams {
            let dropped = hub.stats.dropped.load(Relaxed);
            let seen = mem
                .dropped
                .entry(name.clone())
                .or_insert((dropped, Instant::now() - HEALTH_MEMORY));
            if dropped > seen.0 {
                *seen = (dropped, Instant::now());
            }
            if seen.1.elapsed() < HEALTH_MEMORY {
                issues.push(format!("path {name}: readers dropping packets (slow readers; {dropped} dropped in all)"));
            }
        }
        let udp = api.paths.telemetry.udp_errors.load(Relaxed);
        if udp > mem.udp_errors.0 {
            mem.udp_errors = (udp, Some(Instant::now()));
        }
        if mem
            .udp_errors
            .1
            .is_some_and(|t| t.elapsed() < HEALTH_MEMORY)
        {
            issues.push(format!("UDP socket errors ({udp} in all)"));
        }
    }
    let lag = api.paths.telemetry.runtime_lag_ms.load(Relaxed);
    if lag >= 2000 {
        unhealthy = true;
        issues.push(format!("the runtime is lagging by {lag} ms"));
    } else if lag >= 250 {
        issues.push(format!("the runtime is lagging by {lag} ms"));
    }
    let (status, code) = match (unhealthy, issues.is_empty()) {
        (true, _) => ("unhealthy", StatusCode::SERVICE_UNAVAILABLE),
        (false, true) => ("healthy", StatusCode::OK),
        (false, false) => ("degraded", StatusCode::OK),
    };
    (code, Json(json!({ "status": status, "issues": issues }))).into_response()
}

/// Puts `action` (api, metrics or pprof) behind authentication: Basic credentials, checked
/// like every other action (by default: anyone from 127.0.0.1 and ::1, nobody else).
pub fn guarded(
    router: Router,
    paths: Arc<PathManager>,
    action: crate::auth::Action,
    protocol: crate::auth::Protocol,
) -> Router {
    use crate::auth::{gate, Auth, AuthRequest, Credentials};
    let router = router.layer(axum::middleware::from_fn(
        move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
            std::net::SocketAddr,
        >,
              req: axum::extract::Request,
              next: axum::middleware::Next| {
            let paths = Arc::clone(&paths);
            async move {
                let credentials = req
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(Auth::parse_authorization)
                    .unwrap_or(Credentials::None);
                let check = AuthRequest {
                    credentials: &credentials,
                    ip: peer.ip(),
                    action,
                    path: "",
                    protocol,
                    id: None,
                    query: req.uri().query().unwrap_or(""),
                    rtsp_method: None,
                    rtsp_uri: "",
                    rtsp_conn: "",
                };
                let auth = paths.auth();
                let result = gate::check(&auth, &check).await;
                if result.is_ok()
                    && req
                        .extensions()
                        .get::<browser_guard::NamedLoopback>()
                        .is_some()
                {
                    // Addressed by name from this host: only credentials that were needed
                    // count. If the request passes without them, the caller's address did
                    // the authorizing, and a rebinding page has that address too.
                    let anonymous = AuthRequest {
                        credentials: &Credentials::None,
                        ..check
                    };
                    if credentials.is_none() || auth.authorize(&anonymous).await.is_ok() {
                        let (status, msg) = browser_guard::rebinding_refusal(req.headers());
                        return ApiError(status, msg).into_response();
                    }
                }
                match result {
                    Ok(()) => next.run(req).await,
                    Err(refusal) => {
                        let status = match refusal.busy {
                            true => StatusCode::SERVICE_UNAVAILABLE,
                            false => StatusCode::UNAUTHORIZED,
                        };
                        let mut r = ApiError(status, refusal.message.into()).into_response();
                        for c in &refusal.challenges {
                            if let Ok(v) = axum::http::HeaderValue::from_str(c) {
                                r.headers_mut()
                                    .append(axum::http::header::WWW_AUTHENTICATE, v);
                            }
                        }
                        r
                    }
                }
            }
        },
    ));
    router.layer(axum::middleware::from_fn(browser_guard::layer))
}
