//! Configuration: a YAML file with MediaMTX's key names and defaults (see `configs/hubcast.yml`).
//!
//! Parsing goes through hand-written serde visitors rather than derived structs so that every
//! mistake (unknown key, wrong type, bad value) is raised while the YAML library still knows
//! where it is: the error then carries the line, the column and the dotted key path
//! (`paths.cam.overridePublisher: ...`). Nothing is ignored silently: MediaMTX keys that hubcast
//! does not implement are refused by name instead of being accepted and doing nothing.
//! A key that is absent or null (`key:` with nothing after it, as MediaMTX files write) takes
//! its default, like in MediaMTX.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;

mod keys;
mod loader;
#[cfg(test)]
mod tests;
mod values;

use keys::*;
pub use loader::redact_password;
use loader::*;
use serde::Deserialize;
use values::*;
pub use values::{parse_address, parse_duration};

/// The path entry that applies to every path no other entry matches.
pub const ALL_OTHERS: &str = "all_others";
/// Older MediaMTX spelling of [`ALL_OTHERS`].
const ALL_ALIAS: &str = "all";
/// The `source` of a path that clients publish to (the only source that is not a URL).
pub const PUBLISHER: &str = "publisher";
/// Longest accepted path name, so names stay usable in URLs, logs and maps.
pub const MAX_PATH_NAME_LEN: usize = 200;

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `logLevel`: error, warn, info or debug.
    pub log_level: LogLevel,
    /// `readTimeout`.
    pub read_timeout: Duration,
    /// `writeTimeout`.
    pub write_timeout: Duration,
    /// `writeQueueSize`: packets buffered per reader; a power of two (ring buffer masks).
    pub write_queue_size: usize,
    /// `api`: run the control API.
    pub api: bool,
    /// `apiAddress`: HTTP listener of the control API (loopback by default).
    pub api_address: SocketAddr,
    /// `metrics`: run the Prometheus metrics endpoint.
    pub metrics: bool,
    /// `metricsAddress`: HTTP listener of the metrics endpoint (loopback by default).
    pub metrics_address: SocketAddr,
    /// `pprof`: run the profiling endpoint.
    pub pprof: bool,
    /// `pprofAddress`: HTTP listener of the profiling endpoint (loopback by default).
    pub pprof_address: SocketAddr,
    /// `rtsp`: run the RTSP server.
    pub rtsp: bool,
    /// `rtspTransports`.
    pub rtsp_transports: Vec<RtspTransport>,
    /// `rtspAddress`: RTSP (TCP) listener.
    pub rtsp_address: SocketAddr,
    /// `rtpAddress`: UDP listener for RTP.
    pub rtp_address: SocketAddr,
    /// `rtcpAddress`: UDP listener for RTCP.
    pub rtcp_address: SocketAddr,
    /// `webrtc`: run the WebRTC (WHIP/WHEP) server.
    pub webrtc: bool,
    /// `webrtcAddress`: HTTP listener for WHIP/WHEP.
    pub webrtc_address: SocketAddr,
    /// `webrtcLocalUDPAddress`: the single UDP port all WebRTC media goes through.
    pub webrtc_local_udp_address: SocketAddr,
    /// `webrtcAdditionalHosts`: IPs or host names offered as extra ICE candidates.
    pub webrtc_additional_hosts: Vec<String>,
    /// `webrtcICEServers2`.
    pub webrtc_ice_servers2: Vec<IceServer>,
    /// `webrtcHandshakeTimeout`.
    pub webrtc_handshake_timeout: Duration,
    /// `webrtcAllowOrigins` (or MediaMTX's single `webrtcAllowOrigin`): CORS origins.
    pub webrtc_allow_origins: Vec<String>,
    /// `webrtcSRTPProfiles`: offered in this order; never empty.
    pub webrtc_srtp_profiles: Vec<SrtpProfile>,
    /// `webrtcMaxSessions` (hubcast-specific): WebRTC sessions (WHIP + WHEP) at once; 0 means
    /// unlimited.
    pub webrtc_max_sessions: usize,
    /// `authMethod`: how credentials are checked (see `crate::auth`).
    pub auth_method: AuthMethod,
    /// `authInternalUsers`: the users of the `internal` method, tried in order.
    pub auth_internal_users: Vec<AuthUser>,
    /// `authHTTPAddress`: URL the `http` method POSTs each request to ("" when unset).
    pub auth_http_address: String,
    /// `authHTTPExclude`: actions (and paths) the `http` method allows without asking.
    pub auth_http_exclude: Vec<Permission>,
    /// `authJWTJWKS`: URL of the JSON Web Key Set the `jwt` method verifies tokens with.
    pub auth_jwt_jwks: String,
    /// `authJWTClaimKey`: the JWT claim that holds the permissions.
    pub auth_jwt_claim_key: String,
    /// `authJWTExclude`: actions (and paths) the `jwt` method allows without a token.
    pub auth_jwt_exclude: Vec<Permission>,
    /// `pathDefaults`.
    pub path_defaults: PathConf,
    /// `paths`, in file order, each already merged over `pathDefaults`.
    pub paths: Vec<(String, PathConf)>,
}

/// Settings of one path (or of `pathDefaults`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathConf {
    /// `source`: where the stream comes from: "publisher", or an `rtsp://` / `rtsps://` URL to
    /// pull from (only on a path with a fixed name; see [`PathConf::source_url`]).
    pub source: String,
    /// `sourceOnDemand`: pull the source only while someone reads the path.
    pub source_on_demand: bool,
    /// `sourceOnDemandStartTimeout`: how long a reader waits for an on-demand source to start.
    pub source_on_demand_start_timeout: Duration,
    /// `sourceOnDemandCloseAfter`: how long an on-demand source keeps running without readers.
    pub source_on_demand_close_after: Duration,
    /// `sourceReconnectGrace` (hubcast-specific): how long readers stay attached while a pulled
    /// source reconnects; zero closes them at once, like MediaMTX.
    pub source_reconnect_grace: Duration,
    /// `rtspTransport`: transport used to pull an RTSP source.
    pub rtsp_transport: SourceTransport,
    /// `overridePublisher`: let a new publisher kick out the current one.
    pub override_publisher: bool,
    /// `maxReaders`: 0 means unlimited.
    pub max_readers: usize,
}

/// `logLevel` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// `rtspTransports` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtspTransport {
    Udp,
    Tcp,
}

/// `rtspTransport` values: how a pulled RTSP source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceTransport {
    /// Try UDP, fall back to TCP when no packet arrives.
    Automatic,
    /// RTP interleaved in the RTSP TCP connection.
    Tcp,
    /// RTP over UDP.
    Udp,
}

/// `webrtcSRTPProfiles` values, spelled in YAML as in RFC 5764 / RFC 7714.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `AEAD_AES_128_GCM`
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM`
    AeadAes256Gcm,
    /// `AES_CM_128_HMAC_SHA1_80`
    AesCm128HmacSha1_80,
}

/// One `webrtcICEServers2` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `url`: starts with `stun:`, `turn:` or `turns:`.
    pub url: String,
    /// `username`: required for TURN.
    pub username: String,
    /// `password`: required for TURN.
    pub password: String,
}

/// `authMethod` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Users listed in `authInternalUsers`.
    Internal,
    /// An external HTTP server decides (`authHTTPAddress`).
    Http,
    /// JSON Web Tokens signed by a key of `authJWTJWKS`.
    Jwt,
}

/// What a client wants to do: the `action` of a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthAction {
    Publish,
    Read,
    Playback,
    Api,
    Metrics,
    Pprof,
}

/// One permission: an action, on every path (`path` None) or on the paths `path` names
/// (a path name, or `~regex` that must match the whole name). The path only matters for
/// publish, read and playback, like in MediaMTX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub action: AuthAction,
    pub path: Option<String>,
}

/// One `authInternalUsers` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// `user`: a name, `any` (anyone, whatever the password, including clients that send no
    /// credentials), or a hashed name (`sha256:...`, `argon2:...`) like `pass`.
    pub user: String,
    /// `pass`: plain text, `sha256:<base64 of the SHA-256 digest>` or `argon2:<PHC string>`.
    /// Ignored for `user: any`.
    pub pass: String,
    /// `ips`: networks (or single addresses) the user may connect from; empty = anywhere.
    pub ips: Vec<IpNet>,
    /// `permissions`.
    pub permissions: Vec<Permission>,
}

/// The user name `any`: matches every client.
pub const ANY_USER: &str = "any";

/// Passwords stay out of logs and test failure messages.
impl fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pass = if self.pass.is_empty() { "" } else { "***" };
        f.debug_struct("AuthUser")
            .field("user", &self.user)
            .field("pass", &pass)
            .field("ips", &self.ips)
            .field("permissions", &self.permissions)
            .finish()
    }
}

impl Permission {
    /// A permission for `action` on every path.
    pub fn any_path(action: AuthAction) -> Self {
        Permission { action, path: None }
    }
}

/// Why a configuration (or a path name) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The YAML is malformed, or a key or value is wrong. `message` names the key.
    #[error("{}", located(.file, .line, .column, .message))]
    Invalid {
        file: Option<PathBuf>,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A path name breaks the rules of [`validate_path_name`].
    #[error("invalid path name {name:?}: {reason}")]
    PathName { name: String, reason: String },
}

impl ConfigError {
    /// 1-based line of the offending YAML, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// 1-based column of the offending YAML, when known.
    pub fn column(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { column, .. } => *column,
            _ => None,
        }
    }

    fn invalid(message: String) -> Self {
        ConfigError::Invalid {
            file: None,
            line: None,
            column: None,
            message,
        }
    }

    fn from_yaml(err: serde_yaml_ng::Error) -> Self {
        let location = err.location();
        let mut message = err.to_string();
        // The location goes in front, like compilers do; drop the library's copy of it.
        if let Some(loc) = &location {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            message = message.replacen(&suffix, "", 1);
        }
        ConfigError::Invalid {
            file: None,
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    }

    fn in_file(self, path: &Path) -> Self {
        match self {
            ConfigError::Invalid {
                line,
                column,
                message,
                ..
            } => ConfigError::Invalid {
                file: Some(path.to_path_buf()),
                line,
                column,
                message,
            },
            other => other,
        }
    }
}

fn located(
    file: &Option<PathBuf>,
    line: &Option<usize>,
    column: &Option<usize>,
    message: &str,
) -> String {
    let mut out = String::new();
    if let Some(file) = file {
        out.push_str(&format!("{}: ", file.display()));
    }
    match (line, column) {
        (Some(l), Some(c)) => out.push_str(&format!("line {l} column {c}: ")),
        (Some(l), None) => out.push_str(&format!("line {l}: ")),
        _ => {}
    }
    out.push_str(message);
    out
}

fn all_interfaces(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

impl Default for PathConf {
    fn default() -> Self {
        PathConf {
            source: PUBLISHER.to_string(),
            source_on_demand: false,
            source_on_demand_start_timeout: Duration::from_secs(10),
            source_on_demand_close_after: Duration::from_secs(10),
            // Not in MediaMTX, which closes readers as soon as the source drops: a camera that
            // reboots or a network blip would otherwise kick every viewer out.
            source_reconnect_grace: Duration::from_secs(10),
            rtsp_transport: SourceTransport::Automatic,
            // MediaMTX defaults to true; a stray client must not silently take over a live stream.
            override_publisher: false,
            max_readers: 0,
        }
    }
}

/// MediaMTX's shipped `authInternalUsers`: anyone may publish, read and play back from
/// anywhere; the API, metrics and pprof are open to local clients only.
fn default_auth_internal_users() -> Vec<AuthUser> {
    use AuthAction::*;
    let user = |ips: Vec<IpAddr>, actions: &[AuthAction]| AuthUser {
        user: ANY_USER.to_string(),
        pass: String::new(),
        ips: ips.into_iter().map(IpNet::from).collect(),
        permissions: actions.iter().copied().map(Permission::any_path).collect(),
    };
    vec![
        user(Vec::new(), &[Publish, Read, Playback]),
        user(
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ],
            &[Api, Metrics, Pprof],
        ),
    ]
}

impl Default for Config {
    fn default() -> Self {
        let path_defaults = PathConf::default();
        Config {
            log_level: LogLevel::Info,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            write_queue_size: 512,
            // MediaMTX listens on all interfaces (":9997"); the control API changes what the
            // server does, so hubcast keeps it on loopback unless told otherwise.
            api: true,
            api_address: loopback(9997),
            // MediaMTX has these off; they are on here, but on loopback only.
            metrics: true,
            metrics_address: loopback(9998),
            pprof: true,
            pprof_address: loopback(9999),
            rtsp: true,
            rtsp_transports: vec![RtspTransport::Udp, RtspTransport::Tcp],
            rtsp_address: all_interfaces(8554),
            rtp_address: all_interfaces(8000),
            rtcp_address: all_interfaces(8001),
            webrtc: true,
            webrtc_address: all_interfaces(8889),
            webrtc_local_udp_address: all_interfaces(8189),
            webrtc_additional_hosts: Vec::new(),
            webrtc_ice_servers2: Vec::new(),
            webrtc_handshake_timeout: Duration::from_secs(10),
            webrtc_allow_origins: vec!["*".to_string()],
            webrtc_srtp_profiles: vec![
                SrtpProfile::AeadAes128Gcm,
                SrtpProfile::AesCm128HmacSha1_80,
            ],
            webrtc_max_sessions: 0,
            auth_method: AuthMethod::Internal,
            auth_internal_users: default_auth_internal_users(),
            auth_http_address: String::new(),
            auth_http_exclude: [AuthAction::Api, AuthAction::Metrics, AuthAction::Pprof]
                .into_iter()
                .map(Permission::any_path)
                .collect(),
            auth_jwt_jwks: String::new(),
            auth_jwt_claim_key: "mediamtx_permissions".to_string(),
            auth_jwt_exclude: Vec::new(),
            // Like MediaMTX's shipped file: any valid path name can be published.
            paths: vec![(ALL_OTHERS.to_string(), path_defaults.clone())],
            path_defaults,
        }
    }
}

impl Config {
    /// Parses a YAML document. Keys that are absent (or null) take their defaults.
    pub fn from_yaml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: Option<RawConfig> =
            serde_yaml_ng::from_str(text).map_err(ConfigError::from_yaml)?;
        raw.unwrap_or_default()
            .into_config()
            .map_err(ConfigError::invalid)
    }

    /// Reads and parses a YAML file; errors start with the file name.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml_str(&text).map_err(|e| e.in_file(path))
    }

    /// The configuration that applies to a path name: exact names first, then `~regex` names in
    /// file order (the regex must match the whole name), then `all_others` (or its alias `all`).
    /// None = no such path.
    pub fn path_conf(&self, name: &str) -> Option<&PathConf> {
        let exact = || {
            self.paths
                .iter()
                .find(|(n, _)| !n.starts_with('~') && !is_catch_all(n) && n == name)
        };
        let by_regex = || {
            self.paths.iter().find(|(n, _)| {
                n.strip_prefix('~')
                    .is_some_and(|re| path_regex_matches(re, name))
            })
        };
        let catch_all = || self.paths.iter().find(|(n, _)| is_catch_all(n));
        exact().or_else(by_regex).or_else(catch_all).map(|(_, c)| c)
    }

    /// The paths whose source is pulled from a URL, in file order. Parsing guarantees these
    /// have fixed names (no `~regex`, no `all_others`), so each name is one stream to pull.
    pub fn pulled_paths(&self) -> Vec<(&str, &PathConf)> {
        self.paths
            .iter()
            .filter(|(name, _)| !name.starts_with('~') && !is_catch_all(name))
            .filter_map(|(name, conf)| conf.source_url().map(|_| (name.as_str(), conf)))
            .collect()
    }
}

impl PathConf {
    /// Do the keys a pulled source runs with differ? The others (`maxReaders`,
    /// `overridePublisher`) are read where they apply, and changing them must not restart
    /// the source and drop its viewers.
    pub fn source_differs(&self, other: &PathConf) -> bool {
        self.source != other.source
            || self.source_on_demand != other.source_on_demand
            || self.source_on_demand_start_timeout != other.source_on_demand_start_timeout
            || self.source_on_demand_close_after != other.source_on_demand_close_after
            || self.source_reconnect_grace != other.source_reconnect_grace
            || self.rtsp_transport != other.rtsp_transport
    }

    /// The `rtsp://` or `rtsps://` URL to pull from, or None when clients publish the stream.
    pub fn source_url(&self) -> Option<&str> {
        (self.source != PUBLISHER).then_some(self.source.as_str())
    }
}

fn is_catch_all(name: &str) -> bool {
    name == ALL_OTHERS || name == ALL_ALIAS
}

/// Compiled per lookup: lookups happen once per session, not per packet, and keeping no cache
/// means a `Config` edited in code can never disagree with its own regexes.
fn path_regex_matches(re: &str, name: &str) -> bool {
    compile_path_regex(re).is_ok_and(|r| r.is_match(name))
}

/// Anchored on both ends: a pattern that matched only part of a name would be a surprise.
fn compile_path_regex(re: &str) -> Result<Regex, String> {
    if re.is_empty() {
        return Err("empty regular expression after '~'".to_string());
    }
    Regex::new(&format!("^(?:{re})$")).map_err(|e| {
        // The regex crate draws a multi-line caret diagram; its last line is the actual reason.
        let text = e.to_string();
        let reason = text.lines().last().unwrap_or_default();
        format!(
            "invalid regular expression {re:?}: {}",
            reason.trim_start_matches("error: ")
        )
    })
}

/// Path names: characters `[A-Za-z0-9_./~-]` only, no leading or trailing '/', no empty segment,
/// no "." or ".." segment, at most 200 characters. These come from URLs, so the rules keep them
/// from escaping anything (directories, URL routing) and keep one stream to one spelling.
pub fn validate_path_name(name: &str) -> Result<(), ConfigError> {
    path_name_problem(name).map_or(Ok(()), |reason| {
        Err(ConfigError::PathName {
            name: name.to_string(),
            reason,
        })
    })
}

fn path_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".to_string());
    }
    if name.chars().count() > MAX_PATH_NAME_LEN {
        return Some(format!("longer than {MAX_PATH_NAME_LEN} characters"));
    }
    if let Some(c) = name.chars().find(|c| !is_path_char(*c)) {
        return Some(format!(
            "character {c:?} is not allowed (use letters, digits and _ . / ~ -)"
        ));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Some("it must not start or end with '/'".to_string());
    }
    let segments = || name.split('/');
    if segments().any(str::is_empty) {
        return Some("it has an empty segment (\"//\")".to_string());
    }
    segments()
        .find(|s| *s == "." || *s == "..")
        .map(|s| format!("it has a {s:?} segment"))
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '~' | '-')
}
