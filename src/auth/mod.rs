//! Authentication and authorization, with MediaMTX's three methods (`authMethod`):
//!
//! - `internal`: the users of `authInternalUsers` ([`internal`]);
//! - `http`: an external server answers a JSON POST per request ([`http`]);
//! - `jwt`: JSON Web Tokens verified with the keys of a JWKS ([`jwt`]).
//!
//! The servers (RTSP, WHIP/WHEP, API, metrics, pprof) turn what a request carries into an
//! [`AuthRequest`] (see [`Auth::parse_authorization`]) and call [`Auth::authorize`]:
//!
//! - [`AuthError::Missing`]: answer 401 with [`Auth::challenges`] (clients first try without
//!   credentials; this is no failure);
//! - [`AuthError::Denied`]: call [`Auth::note_failure`], wait what it returns, then answer 401
//!   with the challenges and a generic message (the error's text is for the log only);
//! - [`AuthError::Hook`]: the HTTP hook or the JWKS server is unreachable: log it, answer 401.
//!
//! Internal users with a hashed password (or name) cannot use RTSP Digest, which needs the
//! plain password (MediaMTX has the same limit); [`Auth::challenges`] then offers Basic only.

mod credentials;
mod digest;
pub mod gate;
mod http;
mod internal;
mod jwt;
mod limiter;
mod rules;
#[cfg(test)]
mod test_server;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AuthMethod, Config};

pub use crate::config::AuthAction as Action;
pub use credentials::DigestResponse;

/// The realm of every challenge.
pub const REALM: &str = "hubcast";

/// How long the HTTP hook and the JWKS server have to answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocol a request came in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rtsp,
    Webrtc,
    Api,
    Metrics,
    Pprof,
}

impl Protocol {
    /// The spelling sent to the HTTP hook (`protocol` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtsp => "rtsp",
            Protocol::Webrtc => "webrtc",
            Protocol::Api => "api",
            Protocol::Metrics => "metrics",
            Protocol::Pprof => "pprof",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Credentials as the request carried them.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No (usable) `Authorization` header.
    None,
    /// `Basic base64(user:pass)`.
    Basic { user: String, pass: String },
    /// `Bearer <token>`: a JWT, or `user:pass` (what WHIP clients such as OBS can send).
    Bearer(String),
    /// RTSP `Digest ...` (RFC 2617).
    Digest(DigestResponse),
}

/// Secrets stay out of logs.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("pass", &"***")
                .finish(),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
            Credentials::Digest(d) => f.debug_tuple("Digest").field(d).finish(),
        }
    }
}

impl Credentials {
    /// A user name and password: Basic, or a Bearer token of the form `user:pass`.
    pub fn user_pass(&self) -> Option<(&str, &str)> {
        match self {
            Credentials::Basic { user, pass } => Some((user, pass)),
            Credentials::Bearer(token) => token
                .split_once(':')
                .filter(|(_, pass)| !pass.contains(':')),
            _ => None,
        }
    }

    /// The Bearer token, unless it is a `user:pass` pair.
    pub fn bearer_token(&self) -> Option<&str> {
        match self {
            Credentials::Bearer(token) if self.user_pass().is_none() => Some(token),
            _ => None,
        }
    }

    /// No credentials at all (an empty Basic pair counts as none, like in MediaMTX).
    pub fn is_none(&self) -> bool {
        match self {
            Credentials::None => true,
            Credentials::Basic { user, pass } => user.is_empty() && pass.is_empty(),
            _ => false,
        }
    }
}

/// One request to authorize.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    pub credentials: &'a Credentials,
    pub ip: IpAddr,
    pub action: Action,
    /// The path name; "" for api, metrics and pprof.
    pub path: &'a str,
    pub protocol: Protocol,
    /// The session's id, when it has one already.
    pub id: Option<&'a str>,
    /// The raw query string of the URL (without '?'); may carry `jwt=<token>`.
    pub query: &'a str,
    /// The RTSP method (DESCRIBE, ANNOUNCE, SETUP, ...): Digest hashes it.
    pub rtsp_method: Option<&'a str>,
    /// The RTSP request's URL: a Digest response must be for this target.
    pub rtsp_uri: &'a str,
    /// The RTSP connection's id: Digest nonces are issued for one connection and are
    /// refused on any other, so a captured response cannot be replayed elsewhere.
    pub rtsp_conn: &'a str,
}

/// Why a request was refused. The text is for logs: clients get a generic message.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request carried no credentials and needs some: answer 401 with
    /// [`Auth::challenges`] (not a failure worth [`Auth::note_failure`]: clients first try
    /// without credentials).
    #[error("credentials required")]
    Missing,
    /// The credentials are wrong, or do not allow this action on this path from this address.
    #[error("authentication failed: {0}")]
    Denied(String),
    /// The HTTP hook or the JWKS server could not be asked: the request is denied.
    #[error("authentication server unavailable: {0}")]
    Hook(String),
    /// Too many password hashes are being checked: answer 503 and let the client retry.
    #[error("too many password checks at once")]
    Busy,
}

/// An IPv4 client of a dual-stack listener shows up as `::ffff:a.b.c.d`; `ips` lists it as
/// `a.b.c.d`.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The authenticator for one configuration. Build a new one when the configuration changes.
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    method: AuthMethod,
    internal: internal::Users,
    http: http::Hook,
    jwt: jwt::Verifier,
    limiter: limiter::Limiter,
    nonces: digest::Nonces,
    /// Argon2 checks running at once (each takes a core for tens of ms), and those waiting.
    /// Checks running (one per core).
    hashing: Arc<tokio::sync::Semaphore>,
    /// Checks running or waiting: running + MAX_HASH_QUEUE. Permits are owned by the
    /// check, so a request dropped while it waits (the client hung up) gives its place back,
    /// and one dropped while hashing holds its core until the hash is done.
    hash_queue: Arc<tokio::sync::Semaphore>,
}

/// Argon2 checks waiting for a slot beyond which a request gets 503 at once: a flood of
/// guesses costs the guesser, not every other client's login.
const MAX_HASH_QUEUE: usize = 32;

fn hash_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("method", &self.inner.method)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(config: &Config) -> Auth {
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok();
        Auth {
            inner: Arc::new(Inner {
                method: config.auth_method,
                internal: internal::Users::new(&config.auth_internal_users),
                http: http::Hook::new(
                    &config.auth_http_address,
                    &config.auth_http_exclude,
                    client.clone(),
                ),
                jwt: jwt::Verifier::new(
                    &config.auth_jwt_jwks,
                    &config.auth_jwt_claim_key,
                    &config.auth_jwt_exclude,
                    client,
                ),
                limiter: limiter::Limiter::new(),
                nonces: digest::Nonces::new(),
                hashing: Arc::new(tokio::sync::Semaphore::new(hash_slots())),
                hash_queue: Arc::new(tokio::sync::Semaphore::new(hash_slots() + MAX_HASH_QUEUE)),
            }),
        }
    }

    /// The method this authenticator applies.
    pub fn method(&self) -> AuthMethod {
        self.inner.method
    }

    /// Checks a request. Never panics on any input.
    ///
    /// - `internal`: the first user whose name and password match (`any` matches anyone,
    ///   with or without credentials), whose `ips` contain the address (empty = anywhere) and
    ///   who has a permission for the action on the path (no path = every path) allows it.
    ///   RTSP Digest works for users with a plain-text password only.
    /// - `http`: POSTs `{user, password, token, ip, action, path, protocol, id, query}` to
    ///   `authHTTPAddress` (5 s timeout); 2xx allows, anything else denies. Actions in
    ///   `authHTTPExclude` are allowed without asking.
    /// - `jwt`: the Bearer token (or the `jwt` query parameter, or the Basic password) must
    ///   be signed by a key of the JWKS at `authJWTJWKS`, unexpired, and its
    ///   `authJWTClaimKey` claim must list a permission for the request. Actions in
    ///   `authJWTExclude` are allowed without a token.
    pub async fn authorize(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        let mut req = *req;
        req.ip = canonical_ip(req.ip);
        let inner = &self.inner;
        match inner.method {
            AuthMethod::Internal => self.authorize_internal(&req).await,
            AuthMethod::Http => inner.http.authorize(&req).await,
            AuthMethod::Jwt => inner.jwt.authorize(&req).await,
        }
    }

    async fn authorize_internal(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        let inner = &self.inner;
        let now = digest::unix_now();
        // Argon2 is slow by design: keep it off the async worker threads.
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(rt) if inner.internal.has_slow_hashes() && !req.credentials.is_none() => {
                let queued = Arc::clone(&inner.hash_queue)
                    .try_acquire_owned()
                    .map_err(|_| AuthError::Busy)?;
                let slot = Arc::clone(&inner.hashing)
                    .acquire_owned()
                    .await
                    .map_err(|_| AuthError::Busy)?;
                let inner = Arc::clone(inner);
                let owned = internal::OwnedRequest::from(req);
                rt.spawn_blocking(move || {
                    let _held = (queued, slot);
                    let req = owned.borrow();
                    inner.internal.authorize(&req, &inner.nonces, now)
                })
                .await
                .unwrap_or_else(|e| Err(AuthError::Denied(format!("check failed: {e}"))))
            }
            _ => inner.internal.authorize(req, &inner.nonces, now),
        }
    }

    /// Parses an HTTP/RTSP `Authorization` header value. Malformed -> [`Credentials::None`].
    pub fn parse_authorization(value: &str) -> Credentials {
        credentials::parse(value)
    }

    /// The `WWW-Authenticate` values to send with a 401, one header each.
    ///
    /// HTTP: `Basic realm="hubcast"`, and `Bearer realm="hubcast"` when the method is jwt.
    /// RTSP: `Digest realm="hubcast", nonce="...", algorithm=MD5` then `Basic realm="hubcast"`.
    /// Digest is left out when it cannot succeed: with the http and jwt methods (they need
    /// the password or token itself), and when an internal user has a hashed password or
    /// name (Digest needs the plain password; clients that see Digest offered prefer it).
    pub fn challenges(&self, protocol: Protocol) -> Vec<String> {
        self.challenges_for(protocol, "")
    }

    /// The challenges for a request on RTSP connection `conn` (its Digest nonce is bound to
    /// that connection).
    pub fn challenges_for(&self, protocol: Protocol, conn: &str) -> Vec<String> {
        let basic = format!("Basic realm=\"{REALM}\"");
        let inner = &self.inner;
        match protocol {
            Protocol::Rtsp => {
                let digest_works =
                    inner.method == AuthMethod::Internal && inner.internal.digest_capable();
                let mut out = Vec::with_capacity(2);
                if digest_works {
                    let nonce = inner.nonces.issue(digest::unix_now(), conn);
                    out.push(format!(
                        "Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5"
                    ));
                }
                out.push(basic);
                out
            }
            _ if inner.method == AuthMethod::Jwt => {
                vec![basic, format!("Bearer realm=\"{REALM}\"")]
            }
            _ => vec![basic],
        }
    }

    /// Slows down password guessing: call after a failed authorization. Returns how long the
    /// caller should wait before answering: zero normally, 2 s once the address has failed 5
    /// times within the last minute. Per address (IPv6 per /64), so other clients are not
    /// slowed down; the table forgets addresses after a minute and stays bounded.
    pub fn note_failure(&self, ip: IpAddr) -> Duration {
        self.inner.limiter.note_failure(ip)
    }

    /// The same brake per user name, whatever address the guesses come from.
    pub fn note_user_failure(&self, user: &str) -> Duration {
        self.inner.limiter.note_user_failure(user)
    }
}

#[cfg(test)]
mod tests;
