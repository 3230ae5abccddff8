//! What only a web page would send to the control API, refused before auth looks at it.
//!
//! The API trusts callers by IP (by default anyone on 127.0.0.1), so a page open in a browser
//! on the server host could otherwise add paths or kick sessions: by a form post (no CORS
//! preflight for `text/plain` or form bodies), by `fetch` with `no-cors`, or by DNS
//! rebinding a name of its own onto 127.0.0.1. curl and scripts send none of these markers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A refusal: the status and what the caller did wrong.
pub type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, msg: String) -> Refusal {
    (status, msg)
}

/// The host part of a `Host` header or an origin's authority: `[::1]:9997` -> `::1`.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// A name no rebinding can point elsewhere: an IP literal or localhost.
fn is_literal_or_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" || host.ends_with(".localhost")
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Marks a request from this host that addressed us by a name some DNS answer could have
/// put there (DNS rebinding). The auth layer lets it through only when credentials it
/// carries were what authorized it: a page cannot know them.
#[derive(Clone, Copy, Debug)]
pub struct NamedLoopback;

/// The refusal for a [`NamedLoopback`] request that no credentials authorized.
pub fn rebinding_refusal(headers: &HeaderMap) -> Refusal {
    let host = header_str(headers, header::HOST).unwrap_or("");
    refuse(
        StatusCode::FORBIDDEN,
        format!(
            "Host {host:?} is not an IP address or localhost: without credentials of a named user the API answers only requests addressed by IP (a guard against DNS rebinding)"
        ),
    )
}

/// From this host, the caller's address is trusted only when the name it used is one that
/// no foreign DNS answer can have put there. (Remote scrapers that address the server by
/// name are not affected.)
pub fn named_loopback(headers: &HeaderMap, loopback: bool) -> bool {
    let host = header_str(headers, header::HOST).unwrap_or("");
    loopback && !host.is_empty() && !is_literal_or_localhost(host_part(host))
}

/// Why `req` looks like a browser's cross-site request, if it does.
pub fn check(method: &Method, headers: &HeaderMap, has_body: bool) -> Result<(), Refusal> {
    let host = header_str(headers, header::HOST).unwrap_or("");
    let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !write {
        return Ok(());
    }
    if let Some(origin) = header_str(headers, header::ORIGIN) {
        let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
        if origin == "null" || !authority.eq_ignore_ascii_case(host) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!("writes from a web page of another origin ({origin}) are refused"),
            ));
        }
    }
    if has_body {
        let json = header_str(headers, header::CONTENT_TYPE).is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a body to the API must be sent as Content-Type: application/json (curl: -H 'Content-Type: application/json')".into(),
            ));
        }
    }
    Ok(())
}

pub async fn layer(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let has_body = header_str(req.headers(), header::CONTENT_LENGTH).is_some_and(|l| l != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let loopback = crate::auth::canonical_ip(peer.ip()).is_loopback();
    if named_loopback(req.headers(), loopback) {
        req.extensions_mut().insert(NamedLoopback);
    }
    match check(req.method(), req.headers(), has_body) {
        Ok(()) => next.run(req).await,
        Err((status, msg)) => (status, Json(json!({ "error": msg }))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn curl_passes() {
        let h = headers(&[
            ("host", "127.0.0.1:9997"),
            ("content-type", "application/json"),
        ]);
        assert!(check(&Method::POST, &h, true).is_ok());
        let h = headers(&[("host", "localhost:9997")]);
        assert!(
            check(&Method::POST, &h, false).is_ok(),
            "a kick without a body"
        );
        let h = headers(&[("host", "[::1]:9997")]);
        assert!(check(&Method::GET, &h, false).is_ok());
    }

    #[test]
    fn browser_attacks_are_refused() {
        let form = headers(&[
            ("host", "127.0.0.1:9997"),
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ]);
        assert!(check(&Method::POST, &form, true).is_err());
        let no_origin_form = headers(&[("host", "127.0.0.1:9997"), ("content-type", "text/plain")]);
        assert!(check(&Method::POST, &no_origin_form, true).is_err());
        let rebinding = headers(&[("host", "rebind.evil.example:9997")]);
        assert!(named_loopback(&rebinding, true));
        let scraper = headers(&[("host", "media.example.com:9998")]);
        assert!(!named_loopback(&scraper, false), "a remote caller by name");
        assert!(!named_loopback(&headers(&[("host", "[::1]:9997")]), true));
        let null_origin = headers(&[("host", "127.0.0.1:9997"), ("origin", "null")]);
        assert!(check(&Method::DELETE, &null_origin, false).is_err());
    }

    #[test]
    fn named_hosts_need_credentials() {
        let h = headers(&[("host", "api.example.com"), ("authorization", "Basic eDp5")]);
        assert!(check(&Method::GET, &h, false).is_ok());
        let same = headers(&[
            ("host", "api.example.com"),
            ("authorization", "Basic eDp5"),
            ("origin", "https://api.example.com"),
            ("content-type", "application/json"),
        ]);
        assert!(
            check(&Method::PATCH, &same, true).is_ok(),
            "a same-origin page with credentials"
        );
    }
}
