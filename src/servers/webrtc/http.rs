//! The WebRTC HTTP server: WHEP (and WHIP) endpoints with the WHIP/WHEP wire rules.
//!
//! Path names may contain slashes, so routing splits the URL from the end by hand rather
//! than with a route table: `/{path}/whep`, `/{path}/whep/{secret}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use axum::Router;

use super::session::SessionKind;
use super::{HttpError, WebrtcServer};
use crate::auth::{gate, Action, Auth, AuthRequest, Credentials, Protocol};
use crate::stats::op;

/// SDP offers are a few KB; anything near this is not an offer.
pub const MAX_BODY: usize = 64 * 1024;

pub fn router(server: Arc<WebrtcServer>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(refuse_large_bodies))
        .with_state(server)
}

/// Refuses a body announced larger than `MAX_BODY` before reading any of it (a client that
/// sent `Expect: 100-continue` never has to send it); bodies without a length are cut at the
/// same size by `DefaultBodyLimit`.
async fn refuse_large_bodies(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY} bytes\n"),
        );
    }
    next.run(req).await
}

#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Endpoint {
        path: &'a str,
        kind: SessionKind,
    },
    Session {
        path: &'a str,
        kind: SessionKind,
        secret: &'a str,
    },
    ReaderPage {
        path: &'a str,
    },
    PublisherPage {
        path: &'a str,
    },
    /// `/{path}` without the slash: the reader page's relative URLs need it.
    AddSlash,
    Other,
}

const READER_PAGE: &str = include_str!("pages/reader.html");
const PUBLISHER_PAGE: &str = include_str!("pages/publisher.html");

fn kind_of(segment: &str) -> Option<SessionKind> {
    match segment {
        "whep" => Some(SessionKind::Whep),
        "whip" => Some(SessionKind::Whip),
        _ => None,
    }
}

fn route(uri_path: &str) -> Route<'_> {
    let p = uri_path.strip_prefix('/').unwrap_or(uri_path);
    if let Some(path) = p.strip_suffix('/') {
        if !path.is_empty() {
            return Route::ReaderPage { path };
        }
    }
    if let Some(path) = p.strip_suffix("/publish") {
        if !path.is_empty() {
            return Route::PublisherPage { path };
        }
    }
    if let Some((path, last)) = p.rsplit_once('/') {
        if let Some(kind) = kind_of(last) {
            return Route::Endpoint { path, kind };
        }
        if let Some((path, seg)) = path.rsplit_once('/') {
            if let Some(kind) = kind_of(seg) {
                return Route::Session {
                    path,
                    kind,
                    secret: last,
                };
            }
        }
    }
    if !p.is_empty() && !p.contains('.') {
        return Route::AddSlash;
    }
    Route::Other
}

async fn handle(
    State(server): State<Arc<WebrtcServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let result = match route(uri.path()) {
        Route::Endpoint { path, kind } => match method {
            Method::OPTIONS => Ok(options(&server, "POST, OPTIONS")),
            Method::POST => post(&server, path, kind, peer, &headers, uri.query(), &body).await,
            _ => Err(HttpError::MethodNotAllowed("POST, OPTIONS")),
        },
        Route::Session { path, kind, secret } => match method {
            Method::OPTIONS => Ok(options(&server, "PATCH, DELETE, OPTIONS")),
            Method::PATCH => patch(&server, path, kind, secret, &headers, &body).await,
            Method::DELETE => delete(&server, path, kind, secret),
            _ => Err(HttpError::MethodNotAllowed("PATCH, DELETE, OPTIONS")),
        },
        Route::ReaderPage { path } => page(&method, path, READER_PAGE),
        Route::PublisherPage { path } => page(&method, path, PUBLISHER_PAGE),
        Route::AddSlash if method == Method::GET => {
            let mut r = text(StatusCode::MOVED_PERMANENTLY, String::new());
            if let Ok(v) = HeaderValue::from_str(&format!("{}/", uri.path())) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
        Route::AddSlash | Route::Other => Err(HttpError::NotFound(format!(
            "no such endpoint: {}",
            uri.path()
        ))),
    };
    let mut resp = result.unwrap_or_else(|e| error_response(&e));
    cors(&server, &headers, resp.headers_mut());
    resp
}

/// The built-in pages: plain HTML+JS, no external requests.
fn page(method: &Method, path: &str, html: &'static str) -> Result<Response<Body>, HttpError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(HttpError::MethodNotAllowed("GET"));
    }
    crate::config::validate_path_name(path).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let mut r = Response::new(Body::from(html));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

fn error_response(e: &HttpError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = text(status, format!("{e}\n"));
    match e {
        HttpError::MethodNotAllowed(allowed) => {
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
        HttpError::Unauthorized(refusal) => {
            for c in &refusal.challenges {
                if let Ok(v) = HeaderValue::from_str(c) {
                    r.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
        }
        HttpError::Unavailable(_) => {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(super::RETRY_AFTER_SECS),
            );
        }
        _ => {}
    }
    r
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

fn cors(server: &WebrtcServer, req: &HeaderMap, out: &mut HeaderMap) {
    let config = server.config();
    let allowed = &config.webrtc_allow_origins;
    let origin = req.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let value = if allowed.iter().any(|a| a == "*") {
        Some("*".to_string())
    } else {
        origin
            .filter(|o| allowed.iter().any(|a| a == o))
            .map(str::to_string)
    };
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        out.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Location, ETag, Link, Accept-Patch"),
        );
    }
}

fn options(server: &WebrtcServer, methods: &'static str) -> Response<Body> {
    let mut r = text(StatusCode::NO_CONTENT, String::new());
    let h = r.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert("Accept-Post", HeaderValue::from_static("application/sdp"));
    h.insert(
        "Accept-Patch",
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    add_ice_server_links(server, h);
    r
}

/// `Link: <stun:...>; rel="ice-server"` for each of webrtcICEServers2 (RFC 9725 4.6).
fn add_ice_server_links(server: &WebrtcServer, h: &mut HeaderMap) {
    for s in &server.config().webrtc_ice_servers2 {
        let mut v = format!("<{}>; rel=\"ice-server\"", s.url);
        if !s.username.is_empty() {
            v.push_str(&format!(
                "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                s.username, s.password
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(header::LINK, v);
        }
    }
}

async fn post(
    server: &Arc<WebrtcServer>,
    path: &str,
    kind: SessionKind,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Result<Response<Body>, HttpError> {
    authorize(server, path, kind, peer, headers, query).await?;
    if !content_type_is(headers, "application/sdp") {
        return Err(HttpError::UnsupportedMediaType(
            "the offer must be sent with Content-Type: application/sdp".into(),
        ));
    }
    let offer = std::str::from_utf8(body)
        .map_err(|_| HttpError::BadRequest("the SDP offer is not valid UTF-8".into()))?;
    let started = std::time::Instant::now();
    let (result, op) = match kind {
        SessionKind::Whep => (server.whep_offer(path, offer, peer).await, op::WHEP_POST),
        SessionKind::Whip => (server.whip_offer(path, offer, peer).await, op::WHIP_POST),
    };
    server
        .paths
        .telemetry
        .latencies
        .record(op, started.elapsed(), result.is_ok());
    let (session, answer) = result?;
    let mut r = Response::new(Body::from(answer));
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&session.location()) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&session.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        "Accept-Patch",
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    add_ice_server_links(server, h);
    Ok(r)
}

/// WHIP needs `publish`, WHEP `read` on the path: Basic or Bearer credentials, or `?jwt=`.
async fn authorize(
    server: &WebrtcServer,
    path: &str,
    kind: SessionKind,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), HttpError> {
    crate::config::validate_path_name(path).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(Auth::parse_authorization)
        .unwrap_or(Credentials::None);
    let req = AuthRequest {
        credentials: &credentials,
        ip: peer.ip(),
        action: match kind {
            SessionKind::Whip => Action::Publish,
            SessionKind::Whep => Action::Read,
        },
        path,
        protocol: Protocol::Webrtc,
        id: None,
        query: query.unwrap_or(""),
        rtsp_method: None,
        rtsp_uri: "",
        rtsp_conn: "",
    };
    gate::check(&server.paths.auth(), &req)
        .await
        .map_err(|r| match r.busy {
            true => HttpError::Unavailable(r.message.into()),
            false => HttpError::Unauthorized(r),
        })
}

fn find_session(
    server: &WebrtcServer,
    path: &str,
    kind: SessionKind,
    secret: &str,
) -> Result<Arc<super::session::Session>, HttpError> {
    server
        .sessions
        .get(secret)
        .filter(|s| s.path == path && s.kind == kind)
        .ok_or_else(|| HttpError::NotFound("no such session".into()))
}

fn delete(
    server: &WebrtcServer,
    path: &str,
    kind: SessionKind,
    secret: &str,
) -> Result<Response<Body>, HttpError> {
    let session = find_session(server, path, kind, secret)?;
    session.close("deleted by the client");
    server.sessions.remove(secret);
    Ok(text(StatusCode::OK, String::new()))
}

async fn patch(
    server: &WebrtcServer,
    path: &str,
    kind: SessionKind,
    secret: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Body>, HttpError> {
    let session = find_session(server, path, kind, secret)?;
    if !content_type_is(headers, "application/trickle-ice-sdpfrag") {
        return Err(HttpError::UnsupportedMediaType(
            "PATCH needs Content-Type: application/trickle-ice-sdpfrag".into(),
        ));
    }
    if let Some(tag) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if tag != "*" && tag != session.etag {
            return Err(HttpError::PreconditionFailed(
                "If-Match does not match the session's ETag".into(),
            ));
        }
    }
    let frag = std::str::from_utf8(body)
        .map_err(|_| HttpError::BadRequest("the SDP fragment is not valid UTF-8".into()))?;
    // ICE-lite: the peer's address comes from its binding requests, so its candidates are
    // checked for form and otherwise not needed.
    let candidates = parse_sdpfrag(frag)?;
    tracing::debug!(id = %session.id, ?candidates, "trickled candidates");
    Ok(text(StatusCode::NO_CONTENT, String::new()))
}

/// A candidate of a trickle-ice-sdpfrag, with the mid and ufrag it belongs to.
// Only checked and logged: ICE-lite needs no remote candidates.
#[allow(dead_code)]
#[derive(Debug)]
struct TrickleCandidate {
    candidate: String,
    sdp_mid: Option<String>,
    username_fragment: Option<String>,
}

/// Candidates of a trickle-ice-sdpfrag (RFC 8840).
fn parse_sdpfrag(frag: &str) -> Result<Vec<TrickleCandidate>, HttpError> {
    let mut out = Vec::new();
    let mut ufrag = None;
    let mut mid = None;
    for (n, line) in frag.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let b = line.as_bytes();
        if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
            return Err(HttpError::BadRequest(format!(
                "malformed SDP fragment at line {}: {line:?}",
                n + 1
            )));
        }
        if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(u.to_string());
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_string());
        } else if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                if c.split_whitespace().count() < 8 {
                    return Err(HttpError::BadRequest(format!(
                        "malformed candidate at line {}: {line:?}",
                        n + 1
                    )));
                }
                out.push(TrickleCandidate {
                    candidate: c.to_string(),
                    sdp_mid: mid.clone(),
                    username_fragment: ufrag.clone(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_from_the_end() {
        assert_eq!(
            route("/cam/whep"),
            Route::Endpoint {
                path: "cam",
                kind: SessionKind::Whep
            }
        );
        assert_eq!(
            route("/a/b/whip/abc"),
            Route::Session {
                path: "a/b",
                kind: SessionKind::Whip,
                secret: "abc"
            }
        );
        assert_eq!(route("/whep"), Route::AddSlash);
        assert_eq!(route("/cam/"), Route::ReaderPage { path: "cam" });
        assert_eq!(route("/a/b/publish"), Route::PublisherPage { path: "a/b" });
        assert_eq!(route("/cam"), Route::AddSlash);
        assert_eq!(route("/favicon.ico"), Route::Other);
    }

    #[test]
    fn sdpfrag_candidates_and_errors() {
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n";
        let c = parse_sdpfrag(frag).expect("valid fragment");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].sdp_mid.as_deref(), Some("0"));
        assert_eq!(c[0].username_fragment.as_deref(), Some("abcd"));
        assert!(parse_sdpfrag("garbage line\r\n").is_err());
        assert!(parse_sdpfrag("a=candidate:1 1 udp\r\n").is_err());
        assert!(parse_sdpfrag("").expect("empty is fine").is_empty());
    }
}
