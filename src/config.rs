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
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::Deserialize;

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

impl LogLevel {
    const NAMES: &'static [(&'static str, LogLevel)] = &[
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
    ];

    /// The YAML spelling, which is also a valid `tracing` filter directive.
    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    pub fn tracing_level(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        parse_choice(text, "log level", Self::NAMES)
    }
}

impl RtspTransport {
    const NAMES: &'static [(&'static str, RtspTransport)] =
        &[("udp", RtspTransport::Udp), ("tcp", RtspTransport::Tcp)];

    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    fn parse(text: &str) -> Result<Self, String> {
        if text == "multicast" {
            return Err(
                "RTSP transport \"multicast\" is not supported by hubcast (use udp or tcp)"
                    .to_string(),
            );
        }
        parse_choice(text, "RTSP transport", Self::NAMES)
    }
}

impl SourceTransport {
    const NAMES: &'static [(&'static str, SourceTransport)] = &[
        ("automatic", SourceTransport::Automatic),
        ("tcp", SourceTransport::Tcp),
        ("udp", SourceTransport::Udp),
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    fn parse(text: &str) -> Result<Self, String> {
        if text == "multicast" {
            return Err(
                "RTSP transport \"multicast\" is not supported by hubcast for pulled \
                        sources (use automatic, tcp or udp)"
                    .to_string(),
            );
        }
        parse_choice(text, "RTSP transport", Self::NAMES)
    }
}

impl SrtpProfile {
    const NAMES: &'static [(&'static str, SrtpProfile)] = &[
        ("AEAD_AES_128_GCM", SrtpProfile::AeadAes128Gcm),
        ("AEAD_AES_256_GCM", SrtpProfile::AeadAes256Gcm),
        ("AES_CM_128_HMAC_SHA1_80", SrtpProfile::AesCm128HmacSha1_80),
    ];

    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    /// Bytes of authentication tag on each SRTP/SRTCP packet.
    pub fn tag_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 16,
            SrtpProfile::AesCm128HmacSha1_80 => 10,
        }
    }

    /// The same profile as `webrtc-srtp` names it.
    pub fn to_srtp(self) -> webrtc::srtp::protection_profile::ProtectionProfile {
        use webrtc::srtp::protection_profile::ProtectionProfile as P;
        match self {
            SrtpProfile::AeadAes128Gcm => P::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm => P::AeadAes256Gcm,
            SrtpProfile::AesCm128HmacSha1_80 => P::Aes128CmHmacSha1_80,
        }
    }

    /// The same profile as the DTLS stack names it (`SettingEngine::set_srtp_protection_profiles`).
    pub fn to_dtls(self) -> webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile {
        use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile as P;
        match self {
            SrtpProfile::AeadAes128Gcm => P::Srtp_Aead_Aes_128_Gcm,
            SrtpProfile::AeadAes256Gcm => P::Srtp_Aead_Aes_256_Gcm,
            SrtpProfile::AesCm128HmacSha1_80 => P::Srtp_Aes128_Cm_Hmac_Sha1_80,
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        parse_choice(text, "SRTP profile", Self::NAMES)
    }
}

impl AuthMethod {
    const NAMES: &'static [(&'static str, AuthMethod)] = &[
        ("internal", AuthMethod::Internal),
        ("http", AuthMethod::Http),
        ("jwt", AuthMethod::Jwt),
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    fn parse(text: &str) -> Result<Self, String> {
        parse_choice(text, "auth method", Self::NAMES)
    }
}

impl AuthAction {
    /// Every action, in MediaMTX's order.
    pub const ALL: [AuthAction; 6] = [
        AuthAction::Publish,
        AuthAction::Read,
        AuthAction::Playback,
        AuthAction::Api,
        AuthAction::Metrics,
        AuthAction::Pprof,
    ];

    const NAMES: &'static [(&'static str, AuthAction)] = &[
        ("publish", AuthAction::Publish),
        ("read", AuthAction::Read),
        ("playback", AuthAction::Playback),
        ("api", AuthAction::Api),
        ("metrics", AuthAction::Metrics),
        ("pprof", AuthAction::Pprof),
    ];

    /// The YAML (and JWT claim, and HTTP hook) spelling.
    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    /// Parses the YAML spelling.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_choice(text, "action", Self::NAMES)
    }

    /// Publish, read and playback concern a path; the others do not.
    pub fn has_path(self) -> bool {
        matches!(
            self,
            AuthAction::Publish | AuthAction::Read | AuthAction::Playback
        )
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AuthAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RtspTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SourceTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn name_of<T: Copy + PartialEq>(names: &[(&'static str, T)], value: T) -> &'static str {
    names
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("?", |(n, _)| n)
}

fn parse_choice<T: Copy>(text: &str, what: &str, names: &[(&str, T)]) -> Result<T, String> {
    names
        .iter()
        .find(|(n, _)| *n == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown {what} {text:?} (expected one of: {})",
                list.join(", ")
            )
        })
}

/// MediaMTX-style listen address: ":8554" (all interfaces), "127.0.0.1:8554", "[::1]:8554",
/// "localhost:8554" or "hostname:8554" (resolved now, once). Port 0 picks a free port.
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    let fail = |why: String| format!("invalid address {text:?}: {why}");
    let (host, port) = split_host_port(text).map_err(fail)?;
    let port = parse_port(port).map_err(fail)?;
    let ip = resolve_host(host, port).map_err(fail)?;
    Ok(SocketAddr::new(ip, port))
}

fn split_host_port(text: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("missing ']' after the IPv6 address")?;
        let port = after
            .strip_prefix(':')
            .ok_or("missing \":port\" after ']'")?;
        return match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok((host, port)),
            Err(_) => Err(format!("{host:?} is not an IPv6 address")),
        };
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(
            if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
                format!("missing ':' before the port, e.g. \":{text}\"")
            } else {
                "missing port, e.g. \":8554\"".to_string()
            },
        );
    };
    if host.contains(':') {
        return Err("IPv6 addresses go in brackets, e.g. \"[::1]:8554\"".to_string());
    }
    Ok((host, port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    let digits_only = !port.is_empty() && port.chars().all(|c| c.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(p) if digits_only => Ok(p),
        _ => Err(format!("invalid port {port:?} (expected 0 to 65535)")),
    }
}

fn resolve_host(host: &str, port: u16) -> Result<IpAddr, String> {
    if host.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    // Brackets were stripped already, so an IPv6 literal parses here too.
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    // Fixed rather than resolved: resolvers may answer ::1 first, and MediaMTX users expect IPv4.
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if !is_host_name(host) {
        return Err(format!("{host:?} is not an IP address or host name"));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

/// RFC 1123 host name syntax.
fn is_host_name(text: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=253).contains(&text.len()) && text.split('.').all(label_ok)
}

/// Go `time.ParseDuration` syntax: "10s", "500ms", "1m30s", "1.5h"; units ns, us (µs), ms, s, m,
/// h. A bare number is refused because its unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let usage = "use a unit, e.g. 10s, 500ms or 1m30s";
    if text.is_empty() {
        return Err(format!("empty duration ({usage})"));
    }
    if text.starts_with('-') {
        return Err(format!("negative duration {text:?}"));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    // Go's one unitless duration: zero is zero in every unit.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let (int_part, after) = split_digits(rest);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => split_digits(a),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!("invalid duration {text:?} ({usage})"));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("missing unit in duration {text:?} ({usage})"));
        }
        let unit_ns = unit_nanos(unit).ok_or_else(|| {
            format!("unknown unit {unit:?} in duration {text:?} (valid: ns, us, ms, s, m, h)")
        })?;
        total_ns = term_nanos(int_part, frac_part, unit_ns)
            .and_then(|t| total_ns.checked_add(t))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
        rest = after;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000)
        .map_err(|_| format!("duration {text:?} is too large"))?;
    // The remainder is below 10^9, so it fits.
    let nanos = (total_ns % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// `int.frac` units in nanoseconds; None on overflow.
fn term_nanos(int_part: &str, frac_part: &str, unit_ns: u128) -> Option<u128> {
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    // Digits past 18 are below a nanosecond for every unit; dropping them keeps the math in u128.
    let frac_digits = &frac_part[..frac_part.len().min(18)];
    let frac_ns = if frac_digits.is_empty() {
        0
    } else {
        let frac: u128 = frac_digits.parse().ok()?;
        frac * unit_ns / 10u128.pow(frac_digits.len() as u32)
    };
    int.checked_mul(unit_ns)?.checked_add(frac_ns)
}

// ---------------------------------------------------------------------------------------------
// Keys: every section lists what it accepts; anything else is refused where it is written.

/// The keys of one YAML mapping: the accepted ones, and a test for MediaMTX keys that hubcast
/// knows about but does not implement (so the error can say so instead of "unknown").
struct Section<K: 'static> {
    keys: &'static [(&'static str, K)],
    unsupported: fn(&str) -> bool,
}

impl<K: Copy> Section<K> {
    fn lookup(&self, key: &str) -> Result<K, String> {
        if let Some((_, k)) = self.keys.iter().find(|(n, _)| *n == key) {
            return Ok(*k);
        }
        if (self.unsupported)(key) {
            return Err(format!(
                "key {key:?} is not supported by hubcast (remove it)"
            ));
        }
        let names = self.keys.iter().map(|(n, _)| *n);
        Err(match closest_name(key, names) {
            Some(s) => format!("unknown key {key:?} (did you mean {s:?}?)"),
            None => format!("unknown key {key:?}"),
        })
    }
}

/// The accepted name nearest to a typo, if it is close enough (edit distance <= 2, ignoring case)
/// to be a plausible slip rather than a different key altogether.
fn closest_name<'a>(typo: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let typo = typo.to_ascii_lowercase();
    names
        .map(|n| (edit_distance(&typo, &n.to_ascii_lowercase()), n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// `key` is `family` itself or `family` followed by a camelCase word ("hls", "hlsAddress").
fn in_family(key: &str, family: &str) -> bool {
    key.strip_prefix(family)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase()))
}

fn unsupported_top_key(key: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "api",
        "metrics",
        "pprof",
        "playback",
        "hls",
        "rtmp",
        "srt",
        "record",
        "auth",
        "runOn",
        "multicast",
    ];
    const KEYS: &[&str] = &[
        "logDestinations",
        "logStructured",
        "logFile",
        "sysLogPrefix",
        "udpMaxPayloadSize",
        "udpReadBufferSize",
        "readBufferCount",
        "externalAuthenticationURL",
        "protocols",
        "encryption",
        "serverKey",
        "serverCert",
        "rtspDisable",
        "rtspEncryption",
        "rtspsAddress",
        "rtspServerKey",
        "rtspServerCert",
        "rtspAuthMethods",
        "rtspUDPReadBufferSize",
        "srtpAddress",
        "srtcpAddress",
        "webrtcDisable",
        "webrtcEncryption",
        "webrtcServerKey",
        "webrtcServerCert",
        "webrtcTrustedProxies",
        "webrtcLocalTCPAddress",
        "webrtcIPsFromInterfaces",
        "webrtcIPsFromInterfacesList",
        "webrtcSTUNGatherTimeout",
        "webrtcTrackGatherTimeout",
        "webrtcICEServers",
        "webrtcICEHostNAT1To1IPs",
        "webrtcICEUDPMuxAddress",
        "webrtcICETCPMuxAddress",
    ];
    // Families hubcast implements in part (api, metrics, pprof, auth): the rest of them stays
    // refused, but a near miss of an accepted key ("authMetod") is a typo, not a MediaMTX key.
    let accepted = TOP_SECTION.keys.iter().any(|(n, _)| *n == key);
    let family = FAMILIES.iter().find(|f| in_family(key, f));
    let typo = family.is_some_and(|f| {
        let siblings = TOP_SECTION.keys.iter().map(|(n, _)| *n);
        closest_name(key, siblings.filter(|n| in_family(n, f))).is_some()
    });
    KEYS.contains(&key) || (!accepted && !typo && family.is_some())
}

fn unsupported_path_key(key: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "record",
        "rpiCamera",
        "runOn",
        "alwaysAvailable",
        "whep",
        "rtsp",
        "srt",
        "publish",
        "read",
    ];
    const KEYS: &[&str] = &[
        "sourceFingerprint",
        "sourceRedirect",
        "sourceProtocol",
        "sourceAnyPortEnable",
        "fallback",
        "useAbsoluteTimestamp",
        "rtpSDP",
        "disablePublisherOverride",
    ];
    // The rtsp family is implemented in part (rtspTransport): the rest of it stays refused.
    let accepted = PATH_SECTION.keys.iter().any(|(n, _)| *n == key);
    KEYS.contains(&key) || (!accepted && FAMILIES.iter().any(|f| in_family(key, f)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopKey {
    LogLevel,
    ReadTimeout,
    WriteTimeout,
    WriteQueueSize,
    Api,
    ApiAddress,
    Metrics,
    MetricsAddress,
    Pprof,
    PprofAddress,
    Rtsp,
    RtspTransports,
    RtspAddress,
    RtpAddress,
    RtcpAddress,
    Webrtc,
    WebrtcAddress,
    WebrtcLocalUdpAddress,
    WebrtcAdditionalHosts,
    WebrtcIceServers2,
    WebrtcHandshakeTimeout,
    WebrtcAllowOrigin,
    WebrtcAllowOrigins,
    WebrtcSrtpProfiles,
    WebrtcMaxSessions,
    AuthMethod,
    AuthInternalUsers,
    AuthHttpAddress,
    AuthHttpExclude,
    AuthJwtJwks,
    AuthJwtClaimKey,
    AuthJwtExclude,
    PathDefaults,
    Paths,
}

const TOP_SECTION: Section<TopKey> = Section {
    keys: &[
        ("logLevel", TopKey::LogLevel),
        ("readTimeout", TopKey::ReadTimeout),
        ("writeTimeout", TopKey::WriteTimeout),
        ("writeQueueSize", TopKey::WriteQueueSize),
        ("api", TopKey::Api),
        ("apiAddress", TopKey::ApiAddress),
        ("metrics", TopKey::Metrics),
        ("metricsAddress", TopKey::MetricsAddress),
        ("pprof", TopKey::Pprof),
        ("pprofAddress", TopKey::PprofAddress),
        ("rtsp", TopKey::Rtsp),
        ("rtspTransports", TopKey::RtspTransports),
        ("rtspAddress", TopKey::RtspAddress),
        ("rtpAddress", TopKey::RtpAddress),
        ("rtcpAddress", TopKey::RtcpAddress),
        ("webrtc", TopKey::Webrtc),
        ("webrtcAddress", TopKey::WebrtcAddress),
        ("webrtcLocalUDPAddress", TopKey::WebrtcLocalUdpAddress),
        ("webrtcAdditionalHosts", TopKey::WebrtcAdditionalHosts),
        ("webrtcICEServers2", TopKey::WebrtcIceServers2),
        ("webrtcHandshakeTimeout", TopKey::WebrtcHandshakeTimeout),
        ("webrtcAllowOrigin", TopKey::WebrtcAllowOrigin),
        ("webrtcAllowOrigins", TopKey::WebrtcAllowOrigins),
        ("webrtcSRTPProfiles", TopKey::WebrtcSrtpProfiles),
        ("webrtcMaxSessions", TopKey::WebrtcMaxSessions),
        ("authMethod", TopKey::AuthMethod),
        ("authInternalUsers", TopKey::AuthInternalUsers),
        ("authHTTPAddress", TopKey::AuthHttpAddress),
        ("authHTTPExclude", TopKey::AuthHttpExclude),
        ("authJWTJWKS", TopKey::AuthJwtJwks),
        ("authJWTClaimKey", TopKey::AuthJwtClaimKey),
        ("authJWTExclude", TopKey::AuthJwtExclude),
        ("pathDefaults", TopKey::PathDefaults),
        ("paths", TopKey::Paths),
    ],
    unsupported: unsupported_top_key,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKey {
    Source,
    SourceOnDemand,
    SourceOnDemandStartTimeout,
    SourceOnDemandCloseAfter,
    SourceReconnectGrace,
    RtspTransport,
    OverridePublisher,
    MaxReaders,
}

const PATH_SECTION: Section<PathKey> = Section {
    keys: &[
        ("source", PathKey::Source),
        ("sourceOnDemand", PathKey::SourceOnDemand),
        (
            "sourceOnDemandStartTimeout",
            PathKey::SourceOnDemandStartTimeout,
        ),
        (
            "sourceOnDemandCloseAfter",
            PathKey::SourceOnDemandCloseAfter,
        ),
        ("sourceReconnectGrace", PathKey::SourceReconnectGrace),
        ("rtspTransport", PathKey::RtspTransport),
        ("overridePublisher", PathKey::OverridePublisher),
        ("maxReaders", PathKey::MaxReaders),
    ],
    unsupported: unsupported_path_key,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IceKey {
    Url,
    Username,
    Password,
}

const ICE_SECTION: Section<IceKey> = Section {
    keys: &[
        ("url", IceKey::Url),
        ("username", IceKey::Username),
        ("password", IceKey::Password),
    ],
    unsupported: |key| key == "clientOnly",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserKey {
    User,
    Pass,
    Ips,
    Permissions,
}

const USER_SECTION: Section<UserKey> = Section {
    keys: &[
        ("user", UserKey::User),
        ("pass", UserKey::Pass),
        ("ips", UserKey::Ips),
        ("permissions", UserKey::Permissions),
    ],
    unsupported: |_| false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PermissionKey {
    Action,
    Path,
}

const PERMISSION_SECTION: Section<PermissionKey> = Section {
    keys: &[
        ("action", PermissionKey::Action),
        ("path", PermissionKey::Path),
    ],
    unsupported: |_| false,
};

/// Deserializes one mapping key: checks it against its section and refuses repeats, while the
/// YAML library still points at the key.
struct KeySeed<'a, K: 'static> {
    section: &'a Section<K>,
    seen: &'a mut Vec<K>,
}

impl<'a, K> KeySeed<'a, K> {
    fn new(section: &'a Section<K>, seen: &'a mut Vec<K>) -> Self {
        KeySeed { section, seen }
    }
}

impl<'de, K: Copy + PartialEq> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = K;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, K: Copy + PartialEq> Visitor<'de> for KeySeed<'_, K> {
    type Value = K;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration key")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<K, E> {
        let key = self.section.lookup(text).map_err(E::custom)?;
        if self.seen.contains(&key) {
            return Err(E::custom(format!("duplicate key {text:?}")));
        }
        self.seen.push(key);
        Ok(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Values: wrappers whose Deserialize validates, so a bad value is reported where it is written.

/// Visits a scalar as text and runs `parse` on it.
struct ParseVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<'de, T> Visitor<'de> for ParseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }
}

/// `impl Deserialize` for a type parsed from a scalar's text.
macro_rules! deserialize_by_parsing {
    ($ty:ty, $expecting:literal, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(ParseVisitor {
                    expecting: $expecting,
                    parse: $parse,
                })
            }
        }
    };
}

deserialize_by_parsing!(
    LogLevel,
    "a log level (error, warn, info or debug)",
    LogLevel::parse
);
deserialize_by_parsing!(
    RtspTransport,
    "an RTSP transport (udp or tcp)",
    RtspTransport::parse
);
deserialize_by_parsing!(
    SourceTransport,
    "an RTSP transport (automatic, tcp or udp)",
    SourceTransport::parse
);
deserialize_by_parsing!(SrtpProfile, "an SRTP profile name", SrtpProfile::parse);
deserialize_by_parsing!(
    AuthMethod,
    "an auth method (internal, http or jwt)",
    AuthMethod::parse
);
deserialize_by_parsing!(
    AuthAction,
    "an action (publish, read, playback, api, metrics or pprof)",
    AuthAction::parse
);

struct Address(SocketAddr);
deserialize_by_parsing!(Address, "an address such as \":8554\"", |t| {
    parse_address(t).map(Address)
});

/// A duration that must be positive: every duration here is a timeout, and 0 would fail at once.
struct Timeout(Duration);
deserialize_by_parsing!(Timeout, "a duration such as \"10s\"", |t| {
    match parse_duration(t)? {
        d if d.is_zero() => Err(format!("{t:?}: must be greater than 0")),
        d => Ok(Timeout(d)),
    }
});

/// A duration where zero is meaningful ("not at all"), unlike a [`Timeout`].
struct Delay(Duration);
deserialize_by_parsing!(Delay, "a duration such as \"10s\" (or 0s)", |t| {
    parse_duration(t).map(Delay)
});

struct HostName(String);
deserialize_by_parsing!(HostName, "an IP address or host name", |t| {
    if t.parse::<IpAddr>().is_ok() || is_host_name(t) {
        Ok(HostName(t.to_string()))
    } else {
        Err(format!("{t:?} is not an IP address or host name"))
    }
});

/// A CORS origin as browsers send it ("https://example.com", no path), `*`, or a MediaMTX-style
/// wildcard ("http://*.example.com"); a bare host or a trailing '/' would never match anything.
struct Origin(String);
deserialize_by_parsing!(
    Origin,
    "an origin such as \"https://example.com\" or \"*\"",
    |t| {
        let Some((scheme, rest)) = t.split_once("://") else {
            return match t {
                "*" => Ok(Origin(t.to_string())),
                _ => Err(format!(
                    "origin {t:?} needs a scheme, e.g. \"https://{t}\" (or use \"*\")"
                )),
            };
        };
        if scheme.is_empty() || rest.is_empty() || t.chars().any(char::is_whitespace) {
            Err(format!("invalid origin {t:?}"))
        } else if rest.contains('/') {
            Err(format!(
                "origin {t:?} must not have a path or a trailing '/'"
            ))
        } else {
            Ok(Origin(t.to_string()))
        }
    }
);

/// `authHTTPAddress`, `authJWTJWKS`: empty (unset) or an http:// or https:// URL.
struct AuthUrl(String);
deserialize_by_parsing!(AuthUrl, "an http:// or https:// URL", |t| {
    if t.is_empty() {
        return Ok(AuthUrl(String::new()));
    }
    match url::Url::parse(t) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Err(format!("URL {t:?} must start with http:// or https://"))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Err(format!("URL {t:?} has no host")),
        Ok(_) => Ok(AuthUrl(t.to_string())),
        Err(e) => Err(format!("invalid URL {t:?}: {e}")),
    }
});

/// `authJWTClaimKey`: the name of a claim, so never empty.
struct ClaimKey(String);
deserialize_by_parsing!(ClaimKey, "a JWT claim name", |t| {
    if t.is_empty() {
        Err("the claim name must not be empty".to_string())
    } else {
        Ok(ClaimKey(t.to_string()))
    }
});

/// An `ips` entry: a network in CIDR notation or a single address.
struct IpNetwork(IpNet);
deserialize_by_parsing!(
    IpNetwork,
    "an IP address or network such as 10.0.0.0/8",
    |t| {
        t.parse::<IpNet>()
            .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
            .map(IpNetwork)
            .map_err(|_| {
                format!(
                    "invalid IP address or network {t:?} (expected e.g. 192.168.0.0/16, \
                     10.0.0.1 or ::1)"
                )
            })
    }
);

/// Prefixes of hashed credentials, as MediaMTX writes them.
const SHA256_PREFIX: &str = "sha256:";
const ARGON2_PREFIX: &str = "argon2:";

/// A `user` or `pass` value: plain text, `sha256:<base64 digest>` or `argon2:<PHC string>`.
/// The hashed forms are checked now, so a mangled hash stops startup instead of locking
/// everyone out. Messages never repeat the value: it may be a password.
fn check_credential(text: &str) -> Result<(), String> {
    let lower = text.get(..7).map(str::to_ascii_lowercase);
    if let Some(prefix) = lower.filter(|l| *l == SHA256_PREFIX || *l == ARGON2_PREFIX) {
        if !text.starts_with(&prefix) {
            return Err(format!("write the prefix {prefix:?} in lower case"));
        }
    }
    if let Some(b64) = text.strip_prefix(SHA256_PREFIX) {
        use base64::Engine as _;
        let digest = base64::engine::general_purpose::STANDARD.decode(b64);
        if digest.map_or(true, |d| d.len() != 32) {
            return Err(
                "\"sha256:\" must be followed by the base64 of a SHA-256 digest (44 characters, \
                 e.g. from `echo -n PASSWORD | openssl dgst -binary -sha256 | openssl base64`)"
                    .to_string(),
            );
        }
    } else if let Some(phc) = text.strip_prefix(ARGON2_PREFIX) {
        let usage = "\"argon2:\" must be followed by an Argon2 PHC string such as \
                     $argon2id$v=19$m=4096,t=3,p=1$<salt>$<hash>";
        let hash = argon2::PasswordHash::new(phc).map_err(|e| format!("{usage} ({e})"))?;
        let known = ["argon2id", "argon2i", "argon2d"].contains(&hash.algorithm.as_str());
        if !known || hash.hash.is_none() || argon2::Params::try_from(&hash).is_err() {
            return Err(usage.to_string());
        }
    }
    Ok(())
}

struct UserName(String);
deserialize_by_parsing!(
    UserName,
    "a user name (or any, or a sha256:/argon2: hash)",
    |t| {
        if t.is_empty() {
            return Err(
                "the user name must not be empty (use \"any\" to allow anyone)".to_string(),
            );
        }
        check_credential(t).map(|()| UserName(t.to_string()))
    }
);

struct Password(String);
deserialize_by_parsing!(
    Password,
    "a password (plain, or a sha256:/argon2: hash)",
    |t| { check_credential(t).map(|()| Password(t.to_string())) }
);

/// A permission's `path`: empty (every path), a path name, or `~regex` (whole-name match).
struct PermissionPath(Option<String>);
deserialize_by_parsing!(PermissionPath, "a path name or ~regex", |t| {
    if t.is_empty() {
        return Ok(PermissionPath(None));
    }
    match t.strip_prefix('~') {
        Some(re) => compile_path_regex(re).map(drop)?,
        None => validate_path_name(t).map_err(|e| e.to_string())?,
    };
    Ok(PermissionPath(Some(t.to_string())))
});

/// A permission as MediaMTX writes it (`{action: read, path: cam}`), or a bare action
/// (`read`) as shorthand for that action on every path.
impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PermissionVisitor)
    }
}

struct PermissionVisitor;

impl<'de> Visitor<'de> for PermissionVisitor {
    type Value = Permission;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a permission ({action: ..., path: ...}, or just the action)")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Permission, E> {
        AuthAction::parse(text)
            .map(Permission::any_path)
            .map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Permission, A::Error> {
        let mut action = None;
        let mut path = None;
        let mut seen = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed::new(&PERMISSION_SECTION, &mut seen))? {
            match key {
                PermissionKey::Action => action = map.next_value::<Option<AuthAction>>()?,
                PermissionKey::Path => {
                    path = map
                        .next_value::<Option<PermissionPath>>()?
                        .and_then(|p| p.0)
                }
            }
        }
        let action = action.ok_or_else(|| de::Error::custom("missing key \"action\""))?;
        if let (false, Some(path)) = (action.has_path(), &path) {
            return Err(de::Error::custom(format!(
                "action {action} does not concern a path, yet path is {path:?} (remove it)"
            )));
        }
        Ok(Permission { action, path })
    }
}

impl<'de> Deserialize<'de> for AuthUser {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AuthUserVisitor)
    }
}

struct AuthUserVisitor;

impl<'de> Visitor<'de> for AuthUserVisitor {
    type Value = AuthUser;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user (user, pass, ips, permissions)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AuthUser, A::Error> {
        let mut user = None;
        let mut out = AuthUser {
            user: String::new(),
            pass: String::new(),
            ips: Vec::new(),
            permissions: Vec::new(),
        };
        let mut seen = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed::new(&USER_SECTION, &mut seen))? {
            match key {
                UserKey::User => user = map.next_value::<Option<UserName>>()?.map(|u| u.0),
                UserKey::Pass => {
                    out.pass = map
                        .next_value::<Option<Password>>()?
                        .map(|p| p.0)
                        .unwrap_or_default()
                }
                UserKey::Ips => {
                    out.ips = map
                        .next_value::<Option<Vec<IpNetwork>>>()?
                        .map(|l| l.into_iter().map(|n| n.0).collect())
                        .unwrap_or_default()
                }
                UserKey::Permissions => {
                    out.permissions = map.next_value::<Option<Vec<_>>>()?.unwrap_or_default()
                }
            }
        }
        out.user = user.ok_or_else(|| {
            de::Error::custom("missing key \"user\" (use \"user: any\" to allow anyone)")
        })?;
        // MediaMTX ignores the password of `any`; a password that is never checked would
        // give a false sense of protection.
        if out.user == ANY_USER && !out.pass.is_empty() {
            return Err(de::Error::custom(
                "user \"any\" matches everyone, so its pass would never be checked (remove \
                 pass, or give the user a name)",
            ));
        }
        Ok(out)
    }
}

struct IceUrl(String);
deserialize_by_parsing!(IceUrl, "a stun:, turn: or turns: URL", |t| {
    let body = ["stun:", "turn:", "turns:"]
        .iter()
        .find_map(|scheme| t.strip_prefix(scheme));
    match body {
        Some(b) if !b.is_empty() => Ok(IceUrl(t.to_string())),
        _ => Err(format!(
            "ICE server URL {t:?} must start with stun:, turn: or turns: followed by a host"
        )),
    }
});

/// `source`: "publisher", or an `rtsp://` / `rtsps://` URL to pull from. Checked now rather
/// than when the source is first pulled, so a mistyped camera URL stops startup with its line.
/// Other MediaMTX sources (rtmp://, srt://, whep://, "redirect", ...) are refused by name: a
/// source accepted but never pulled would leave the path forever empty.
fn parse_source(text: &str) -> Result<String, String> {
    const EXPECTED: &str = "use \"publisher\" or an rtsp:// or rtsps:// URL";
    if text == PUBLISHER {
        return Ok(text.to_string());
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(match text {
            "redirect" | "rpiCamera" => {
                format!("source {text:?} is not supported by hubcast ({EXPECTED})")
            }
            _ => format!("invalid source {text:?} ({EXPECTED})"),
        });
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    match scheme {
        "rtsp" | "rtsps" => check_source_url(rest)
            .map(|()| text.to_string())
            .map_err(|why| format!("invalid source URL {:?}: {why}", redact_password(text))),
        _ if scheme.eq_ignore_ascii_case("rtsp") || scheme.eq_ignore_ascii_case("rtsps") => Err(
            format!("source scheme \"{scheme}://\" must be written in lower case"),
        ),
        _ if scheme_ok => Err(format!(
            "source scheme \"{scheme}://\" is not supported by hubcast ({EXPECTED})"
        )),
        _ => Err(format!(
            "invalid source {:?} ({EXPECTED})",
            redact_password(text)
        )),
    }
}

/// The part of an RTSP URL after "rtsp://": `[user[:password]@]host[:port][/path][?query]`.
fn check_source_url(rest: &str) -> Result<(), String> {
    if let Some(c) = rest.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "character {c:?} is not allowed (percent-encode it)"
        ));
    }
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    // The last '@' ends the credentials, as in Go's url.Parse.
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            if userinfo.split(':').next().is_none_or(str::is_empty) {
                return Err("empty user name before '@'".to_string());
            }
            host_port
        }
        None => authority,
    };
    let (host, port) = split_url_host_port(host_port)?;
    if host.is_empty() {
        return Err("missing host".to_string());
    }
    if host.parse::<IpAddr>().is_err() && !is_host_name(host) {
        return Err(format!("{host:?} is not an IP address or host name"));
    }
    match port.map(parse_port) {
        Some(Ok(0) | Err(_)) => Err(format!(
            "invalid port {:?} (expected 1 to 65535)",
            port.unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`: the port is optional, unlike in listen addresses.
fn split_url_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("missing ']' after the IPv6 address")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected {after:?} after ']'")),
            },
        };
    }
    match text.split_once(':') {
        Some((_, port)) if port.contains(':') => {
            Err("IPv6 addresses go in brackets, e.g. \"rtsp://[::1]:554/live\"".to_string())
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

/// A source URL fit for an error message: the password, if any, becomes "***".
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Where a path entry is written, which decides whether its `source` may be a URL: a pulled
/// source is one stream from one URL, so it needs a path with one fixed name.
#[derive(Debug, Clone, Copy)]
enum PathScope<'a> {
    /// `pathDefaults`.
    Defaults,
    /// The `paths` entry with this name (a path name, a `~regex` or `all_others`).
    Entry(&'a str),
}

impl PathScope<'_> {
    /// Why a path here cannot pull its source, if it cannot.
    fn pull_refusal(self) -> Option<String> {
        let why = match self {
            PathScope::Defaults => {
                "pathDefaults applies to every path; set the URL under a named path".to_string()
            }
            PathScope::Entry(name) if name.starts_with('~') => format!(
                "{name:?} is a regular expression (MediaMTX's $G1 substitution is not supported \
                 by hubcast)"
            ),
            PathScope::Entry(name) if is_catch_all(name) => {
                format!("{name:?} matches every other path")
            }
            PathScope::Entry(_) => return None,
        };
        Some(format!(
            "a pulled source needs a path with a fixed name: {why}"
        ))
    }
}

/// Deserializes a `source` value, refusing a URL where [`PathScope`] forbids pulling. Done in
/// the visitor so that the error points at the value.
struct SourceSeed<'a>(PathScope<'a>);

impl<'de> DeserializeSeed<'de> for SourceSeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for SourceSeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a source (publisher, or an rtsp:// or rtsps:// URL)")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        let source = parse_source(text).map_err(E::custom)?;
        match self.0.pull_refusal() {
            Some(why) if source != PUBLISHER => Err(E::custom(why)),
            _ => Ok(source),
        }
    }
}

/// `Option<T>` for a seed: null (`key:` with nothing after it) is None, as for plain values.
struct Nullable<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or nothing")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

/// A MediaMTX boolean: YAML 1.2 `true`/`false`, or the YAML 1.1 `yes`/`no` MediaMTX writes
/// (which serde_yaml_ng reads as strings).
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
    }
}

struct FlagVisitor;

impl<'de> Visitor<'de> for FlagVisitor {
    type Value = Flag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean (yes, no, true or false)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
        Ok(Flag(v))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Flag, E> {
        match text.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(Flag(true)),
            "no" | "false" => Ok(Flag(false)),
            _ => Err(E::custom(format!(
                "expected a boolean (yes, no, true or false), got {text:?}"
            ))),
        }
    }
}

/// A non-negative integer, with a message that says so instead of "expected usize".
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(CountVisitor)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number >= 0")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
        usize::try_from(v)
            .map(Count)
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
        u64::try_from(v)
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            .and_then(|v| self.visit_u64(v))
    }
}

/// `writeQueueSize`: readers index a ring buffer with `seq & (size - 1)`, like MediaMTX.
struct QueueSize(usize);

impl<'de> Deserialize<'de> for QueueSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(QueueSizeVisitor)
    }
}

/// Checks inside the visitor: an error raised after the value was read would lose its location.
struct QueueSizeVisitor;

impl QueueSizeVisitor {
    fn check<E: de::Error>(count: Result<Count, E>) -> Result<QueueSize, E> {
        match count? {
            Count(n) if n.is_power_of_two() => Ok(QueueSize(n)),
            Count(n) => Err(E::custom(format!(
                "must be a power of two greater than 0 (e.g. 256, 512, 1024), got {n}"
            ))),
        }
    }
}

impl<'de> Visitor<'de> for QueueSizeVisitor {
    type Value = QueueSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a power of two greater than 0")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<QueueSize, E> {
        Self::check(CountVisitor.visit_u64(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<QueueSize, E> {
        Self::check(CountVisitor.visit_i64(v))
    }
}

/// A list without repeats that must not be empty: an empty one would leave the server with
/// nothing to offer.
struct NonEmpty<T>(Vec<T>);

impl<'de, T: Deserialize<'de> + PartialEq + fmt::Display> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(NonEmptyVisitor(PhantomData))
    }
}

struct NonEmptyVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + PartialEq + fmt::Display> Visitor<'de> for NonEmptyVisitor<T> {
    type Value = NonEmpty<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NonEmpty<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<T>()? {
            if items.contains(&item) {
                return Err(de::Error::custom(format!("{item} is listed twice")));
            }
            items.push(item);
        }
        if items.is_empty() {
            return Err(de::Error::custom("the list must not be empty"));
        }
        Ok(NonEmpty(items))
    }
}

impl<'de> Deserialize<'de> for IceServer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(IceServerVisitor)
    }
}

struct IceServerVisitor;

impl<'de> Visitor<'de> for IceServerVisitor {
    type Value = IceServer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ICE server (url, username, password)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IceServer, A::Error> {
        let mut url = None;
        let mut server = IceServer {
            url: String::new(),
            username: String::new(),
            password: String::new(),
        };
        let mut seen = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed::new(&ICE_SECTION, &mut seen))? {
            match key {
                IceKey::Url => url = map.next_value::<Option<IceUrl>>()?,
                IceKey::Username => {
                    server.username = map.next_value::<Option<String>>()?.unwrap_or_default()
                }
                IceKey::Password => {
                    server.password = map.next_value::<Option<String>>()?.unwrap_or_default()
                }
            }
        }
        server.url = url
            .ok_or_else(|| de::Error::custom("missing key \"url\""))?
            .0;
        // The WebRTC stack refuses credential-less TURN servers only when a session starts.
        let is_turn = !server.url.starts_with("stun:");
        if is_turn && (server.username.is_empty() || server.password.is_empty()) {
            return Err(de::Error::custom(format!(
                "TURN server {:?} needs a username and a password",
                server.url
            )));
        }
        Ok(server)
    }
}

/// A path entry as written: only the keys given, to be laid over `pathDefaults` later
/// (which may come after `paths` in the file).
#[derive(Debug, Default)]
struct RawPath {
    source: Option<String>,
    source_on_demand: Option<bool>,
    source_on_demand_start_timeout: Option<Duration>,
    source_on_demand_close_after: Option<Duration>,
    source_reconnect_grace: Option<Duration>,
    rtsp_transport: Option<SourceTransport>,
    override_publisher: Option<bool>,
    max_readers: Option<usize>,
}

impl RawPath {
    fn over(self, base: &PathConf) -> PathConf {
        PathConf {
            source: self.source.unwrap_or_else(|| base.source.clone()),
            source_on_demand: self.source_on_demand.unwrap_or(base.source_on_demand),
            source_on_demand_start_timeout: self
                .source_on_demand_start_timeout
                .unwrap_or(base.source_on_demand_start_timeout),
            source_on_demand_close_after: self
                .source_on_demand_close_after
                .unwrap_or(base.source_on_demand_close_after),
            source_reconnect_grace: self
                .source_reconnect_grace
                .unwrap_or(base.source_reconnect_grace),
            rtsp_transport: self.rtsp_transport.unwrap_or(base.rtsp_transport),
            override_publisher: self.override_publisher.unwrap_or(base.override_publisher),
            max_readers: self.max_readers.unwrap_or(base.max_readers),
        }
    }
}

/// Deserializes a path entry, knowing where it is written (see [`PathScope`]).
struct RawPathSeed<'a>(PathScope<'a>);

impl<'de> DeserializeSeed<'de> for RawPathSeed<'_> {
    type Value = RawPath;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawPath, D::Error> {
        deserializer.deserialize_map(RawPathVisitor(self.0))
    }
}

struct RawPathVisitor<'a>(PathScope<'a>);

impl<'de> Visitor<'de> for RawPathVisitor<'_> {
    type Value = RawPath;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("path settings (source, overridePublisher, maxReaders, ...)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPath, A::Error> {
        let mut raw = RawPath::default();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed::new(&PATH_SECTION, &mut seen))? {
            match key {
                PathKey::Source => {
                    raw.source = map.next_value_seed(Nullable(SourceSeed(self.0)))?
                }
                PathKey::SourceOnDemand => {
                    raw.source_on_demand = map.next_value::<Option<Flag>>()?.map(|f| f.0)
                }
                PathKey::SourceOnDemandStartTimeout => {
                    raw.source_on_demand_start_timeout =
                        map.next_value::<Option<Timeout>>()?.map(|t| t.0)
                }
                PathKey::SourceOnDemandCloseAfter => {
                    raw.source_on_demand_close_after =
                        map.next_value::<Option<Timeout>>()?.map(|t| t.0)
                }
                PathKey::SourceReconnectGrace => {
                    raw.source_reconnect_grace = map.next_value::<Option<Delay>>()?.map(|d| d.0)
                }
                PathKey::RtspTransport => raw.rtsp_transport = map.next_value()?,
                PathKey::OverridePublisher => {
                    raw.override_publisher = map.next_value::<Option<Flag>>()?.map(|f| f.0)
                }
                PathKey::MaxReaders => {
                    raw.max_readers = map.next_value::<Option<Count>>()?.map(|c| c.0)
                }
            }
        }
        Ok(raw)
    }
}

/// The `paths` mapping: names in file order, each with its settings (None for `cam:` alone).
struct RawPaths(Vec<(String, Option<RawPath>)>);

impl<'de> Deserialize<'de> for RawPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawPathsVisitor)
    }
}

struct RawPathsVisitor;

impl<'de> Visitor<'de> for RawPathsVisitor {
    type Value = RawPaths;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of path names to path settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPaths, A::Error> {
        let mut entries: Vec<(String, Option<RawPath>)> = Vec::new();
        let mut seen = Vec::new();
        while let Some(name) = map.next_key_seed(PathNameSeed { seen: &mut seen })? {
            let conf = map.next_value_seed(Nullable(RawPathSeed(PathScope::Entry(&name))))?;
            entries.push((name, conf));
        }
        Ok(RawPaths(entries))
    }
}

/// Deserializes a `paths` key: a path name, a `~regex`, or `all_others`/`all`.
struct PathNameSeed<'a> {
    seen: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for PathNameSeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for PathNameSeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a path name, a ~regex or all_others")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<String, E> {
        check_path_key(name).map_err(E::custom)?;
        // `all` and `all_others` are one entry under two spellings.
        let canonical = if is_catch_all(name) { ALL_OTHERS } else { name };
        if self.seen.iter().any(|s| s == canonical) {
            return Err(E::custom(format!("path {name:?} is listed twice")));
        }
        self.seen.push(canonical.to_string());
        Ok(name.to_string())
    }
}

fn check_path_key(name: &str) -> Result<(), String> {
    if is_catch_all(name) {
        return Ok(());
    }
    match name.strip_prefix('~') {
        Some(re) => compile_path_regex(re).map(drop),
        None => validate_path_name(name).map_err(|e| e.to_string()),
    }
}

/// The document as written: only the keys given, typed and validated one by one.
#[derive(Default)]
struct RawConfig {
    log_level: Option<LogLevel>,
    read_timeout: Option<Timeout>,
    write_timeout: Option<Timeout>,
    write_queue_size: Option<QueueSize>,
    api: Option<Flag>,
    api_address: Option<Address>,
    metrics: Option<Flag>,
    metrics_address: Option<Address>,
    pprof: Option<Flag>,
    pprof_address: Option<Address>,
    rtsp: Option<Flag>,
    rtsp_transports: Option<NonEmpty<RtspTransport>>,
    rtsp_address: Option<Address>,
    rtp_address: Option<Address>,
    rtcp_address: Option<Address>,
    webrtc: Option<Flag>,
    webrtc_address: Option<Address>,
    webrtc_local_udp_address: Option<Address>,
    webrtc_additional_hosts: Option<Vec<HostName>>,
    webrtc_ice_servers2: Option<Vec<IceServer>>,
    webrtc_handshake_timeout: Option<Timeout>,
    webrtc_allow_origin: Option<Origin>,
    webrtc_allow_origins: Option<Vec<Origin>>,
    webrtc_srtp_profiles: Option<NonEmpty<SrtpProfile>>,
    webrtc_max_sessions: Option<Count>,
    auth_method: Option<AuthMethod>,
    auth_internal_users: Option<Vec<AuthUser>>,
    auth_http_address: Option<AuthUrl>,
    auth_http_exclude: Option<Vec<Permission>>,
    auth_jwt_jwks: Option<AuthUrl>,
    auth_jwt_claim_key: Option<ClaimKey>,
    auth_jwt_exclude: Option<Vec<Permission>>,
    path_defaults: Option<RawPath>,
    paths: Option<RawPaths>,
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawConfigVisitor)
    }
}

struct RawConfigVisitor;

impl<'de> Visitor<'de> for RawConfigVisitor {
    type Value = RawConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of configuration keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
        let mut raw = RawConfig::default();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed::new(&TOP_SECTION, &mut seen))? {
            match key {
                TopKey::LogLevel => raw.log_level = map.next_value()?,
                TopKey::ReadTimeout => raw.read_timeout = map.next_value()?,
                TopKey::WriteTimeout => raw.write_timeout = map.next_value()?,
                TopKey::WriteQueueSize => raw.write_queue_size = map.next_value()?,
                TopKey::Api => raw.api = map.next_value()?,
                TopKey::ApiAddress => raw.api_address = map.next_value()?,
                TopKey::Metrics => raw.metrics = map.next_value()?,
                TopKey::MetricsAddress => raw.metrics_address = map.next_value()?,
                TopKey::Pprof => raw.pprof = map.next_value()?,
                TopKey::PprofAddress => raw.pprof_address = map.next_value()?,
                TopKey::Rtsp => raw.rtsp = map.next_value()?,
                TopKey::RtspTransports => raw.rtsp_transports = map.next_value()?,
                TopKey::RtspAddress => raw.rtsp_address = map.next_value()?,
                TopKey::RtpAddress => raw.rtp_address = map.next_value()?,
                TopKey::RtcpAddress => raw.rtcp_address = map.next_value()?,
                TopKey::Webrtc => raw.webrtc = map.next_value()?,
                TopKey::WebrtcAddress => raw.webrtc_address = map.next_value()?,
                TopKey::WebrtcLocalUdpAddress => raw.webrtc_local_udp_address = map.next_value()?,
                TopKey::WebrtcAdditionalHosts => raw.webrtc_additional_hosts = map.next_value()?,
                TopKey::WebrtcIceServers2 => raw.webrtc_ice_servers2 = map.next_value()?,
                TopKey::WebrtcHandshakeTimeout => {
                    raw.webrtc_handshake_timeout = map.next_value()?
                }
                TopKey::WebrtcAllowOrigin => raw.webrtc_allow_origin = map.next_value()?,
                TopKey::WebrtcAllowOrigins => raw.webrtc_allow_origins = map.next_value()?,
                TopKey::WebrtcSrtpProfiles => raw.webrtc_srtp_profiles = map.next_value()?,
                TopKey::WebrtcMaxSessions => raw.webrtc_max_sessions = map.next_value()?,
                TopKey::AuthMethod => raw.auth_method = map.next_value()?,
                TopKey::AuthInternalUsers => raw.auth_internal_users = map.next_value()?,
                TopKey::AuthHttpAddress => raw.auth_http_address = map.next_value()?,
                TopKey::AuthHttpExclude => raw.auth_http_exclude = map.next_value()?,
                TopKey::AuthJwtJwks => raw.auth_jwt_jwks = map.next_value()?,
                TopKey::AuthJwtClaimKey => raw.auth_jwt_claim_key = map.next_value()?,
                TopKey::AuthJwtExclude => raw.auth_jwt_exclude = map.next_value()?,
                TopKey::PathDefaults => {
                    raw.path_defaults =
                        map.next_value_seed(Nullable(RawPathSeed(PathScope::Defaults)))?
                }
                TopKey::Paths => raw.paths = map.next_value()?,
            }
        }
        Ok(raw)
    }
}

impl RawConfig {
    /// Fills in defaults and checks what spans several keys.
    fn into_config(self) -> Result<Config, String> {
        let d = Config::default();
        let webrtc_allow_origins = match (self.webrtc_allow_origin, self.webrtc_allow_origins) {
            (Some(_), Some(_)) => {
                return Err(
                    "webrtcAllowOrigin and webrtcAllowOrigins are both set; keep only \
                     webrtcAllowOrigins"
                        .to_string(),
                )
            }
            (Some(one), None) => vec![one.0],
            (None, Some(list)) => list.into_iter().map(|o| o.0).collect(),
            (None, None) => d.webrtc_allow_origins,
        };
        let auth_method = self.auth_method.unwrap_or(d.auth_method);
        let auth_http_address = self.auth_http_address.map_or(d.auth_http_address, |u| u.0);
        let auth_jwt_jwks = self.auth_jwt_jwks.map_or(d.auth_jwt_jwks, |u| u.0);
        match auth_method {
            AuthMethod::Http if auth_http_address.is_empty() => {
                return Err(
                    "authMethod is \"http\" but authHTTPAddress is empty; set it to the URL of \
                     the authentication server"
                        .to_string(),
                )
            }
            AuthMethod::Jwt if auth_jwt_jwks.is_empty() => {
                return Err(
                    "authMethod is \"jwt\" but authJWTJWKS is empty; set it to the URL of the \
                     JWKS of the identity server"
                        .to_string(),
                )
            }
            _ => {}
        }
        let path_defaults = self
            .path_defaults
            .unwrap_or_default()
            .over(&d.path_defaults);
        let paths = match self.paths {
            Some(RawPaths(entries)) => entries
                .into_iter()
                .map(|(name, raw)| (name, raw.unwrap_or_default().over(&path_defaults)))
                .collect(),
            None => vec![(ALL_OTHERS.to_string(), path_defaults.clone())],
        };
        Ok(Config {
            log_level: self.log_level.unwrap_or(d.log_level),
            read_timeout: self.read_timeout.map_or(d.read_timeout, |t| t.0),
            write_timeout: self.write_timeout.map_or(d.write_timeout, |t| t.0),
            write_queue_size: self.write_queue_size.map_or(d.write_queue_size, |q| q.0),
            api: self.api.map_or(d.api, |f| f.0),
            api_address: self.api_address.map_or(d.api_address, |a| a.0),
            metrics: self.metrics.map_or(d.metrics, |f| f.0),
            metrics_address: self.metrics_address.map_or(d.metrics_address, |a| a.0),
            pprof: self.pprof.map_or(d.pprof, |f| f.0),
            pprof_address: self.pprof_address.map_or(d.pprof_address, |a| a.0),
            rtsp: self.rtsp.map_or(d.rtsp, |f| f.0),
            rtsp_transports: self.rtsp_transports.map_or(d.rtsp_transports, |l| l.0),
            rtsp_address: self.rtsp_address.map_or(d.rtsp_address, |a| a.0),
            rtp_address: self.rtp_address.map_or(d.rtp_address, |a| a.0),
            rtcp_address: self.rtcp_address.map_or(d.rtcp_address, |a| a.0),
            webrtc: self.webrtc.map_or(d.webrtc, |f| f.0),
            webrtc_address: self.webrtc_address.map_or(d.webrtc_address, |a| a.0),
            webrtc_local_udp_address: self
                .webrtc_local_udp_address
                .map_or(d.webrtc_local_udp_address, |a| a.0),
            webrtc_additional_hosts: self
                .webrtc_additional_hosts
                .map_or(d.webrtc_additional_hosts, |l| {
                    l.into_iter().map(|h| h.0).collect()
                }),
            webrtc_ice_servers2: self.webrtc_ice_servers2.unwrap_or(d.webrtc_ice_servers2),
            webrtc_handshake_timeout: self
                .webrtc_handshake_timeout
                .map_or(d.webrtc_handshake_timeout, |t| t.0),
            webrtc_allow_origins,
            webrtc_srtp_profiles: self
                .webrtc_srtp_profiles
                .map_or(d.webrtc_srtp_profiles, |l| l.0),
            webrtc_max_sessions: self
                .webrtc_max_sessions
                .map_or(d.webrtc_max_sessions, |c| c.0),
            auth_method,
            auth_internal_users: self.auth_internal_users.unwrap_or(d.auth_internal_users),
            auth_http_address,
            auth_http_exclude: self.auth_http_exclude.unwrap_or(d.auth_http_exclude),
            auth_jwt_jwks,
            auth_jwt_claim_key: self
                .auth_jwt_claim_key
                .map_or(d.auth_jwt_claim_key, |k| k.0),
            auth_jwt_exclude: self.auth_jwt_exclude.unwrap_or(d.auth_jwt_exclude),
            path_defaults,
            paths,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Config {
        match Config::from_yaml_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("config should parse: {e}\n---\n{yaml}"),
        }
    }

    /// The error text for a document that must be refused.
    fn refuse(yaml: &str) -> String {
        match Config::from_yaml_str(yaml) {
            Ok(c) => panic!("config should be refused:\n{yaml}\n---\nparsed as {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_mentions(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(
                message.contains(part),
                "{message:?} should mention {part:?}"
            );
        }
    }

    fn addr(text: &str) -> SocketAddr {
        match text.parse() {
            Ok(a) => a,
            Err(e) => panic!("bad test address {text}: {e}"),
        }
    }

    #[test]
    fn defaults_match_mediamtx() {
        let c = Config::default();
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.read_timeout, Duration::from_secs(10));
        assert_eq!(c.write_timeout, Duration::from_secs(10));
        assert_eq!(c.write_queue_size, 512);
        assert!(c.api);
        assert_eq!(c.api_address, addr("127.0.0.1:9997"));
        assert!(c.metrics);
        assert_eq!(c.metrics_address, addr("127.0.0.1:9998"));
        assert!(c.pprof);
        assert_eq!(c.pprof_address, addr("127.0.0.1:9999"));
        assert!(c.rtsp);
        assert_eq!(c.rtsp_transports, [RtspTransport::Udp, RtspTransport::Tcp]);
        assert_eq!(c.rtsp_address, addr("0.0.0.0:8554"));
        assert_eq!(c.rtp_address, addr("0.0.0.0:8000"));
        assert_eq!(c.rtcp_address, addr("0.0.0.0:8001"));
        assert!(c.webrtc);
        assert_eq!(c.webrtc_address, addr("0.0.0.0:8889"));
        assert_eq!(c.webrtc_local_udp_address, addr("0.0.0.0:8189"));
        assert!(c.webrtc_additional_hosts.is_empty());
        assert!(c.webrtc_ice_servers2.is_empty());
        assert_eq!(c.webrtc_handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.webrtc_allow_origins, ["*"]);
        assert_eq!(
            c.webrtc_srtp_profiles,
            [SrtpProfile::AeadAes128Gcm, SrtpProfile::AesCm128HmacSha1_80]
        );
        assert_eq!(c.webrtc_max_sessions, 0);
        assert_eq!(c.auth_method, AuthMethod::Internal);
        type UserRow<'a> = (
            &'a str,
            &'a str,
            Vec<String>,
            Vec<(AuthAction, Option<&'a str>)>,
        );
        let users: Vec<UserRow> = c
            .auth_internal_users
            .iter()
            .map(|u| {
                (
                    u.user.as_str(),
                    u.pass.as_str(),
                    u.ips.iter().map(ToString::to_string).collect(),
                    u.permissions
                        .iter()
                        .map(|p| (p.action, p.path.as_deref()))
                        .collect(),
                )
            })
            .collect();
        use AuthAction::*;
        assert_eq!(
            users,
            [
                (
                    "any",
                    "",
                    vec![],
                    vec![(Publish, None), (Read, None), (Playback, None)]
                ),
                (
                    "any",
                    "",
                    vec!["127.0.0.1/32".to_string(), "::1/128".to_string()],
                    vec![(Api, None), (Metrics, None), (Pprof, None)]
                ),
            ]
        );
        assert_eq!(c.auth_http_address, "");
        assert_eq!(
            c.auth_http_exclude,
            [Api, Metrics, Pprof].map(Permission::any_path)
        );
        assert_eq!(c.auth_jwt_jwks, "");
        assert_eq!(c.auth_jwt_claim_key, "mediamtx_permissions");
        assert!(c.auth_jwt_exclude.is_empty());
        let pd = &c.path_defaults;
        assert_eq!(pd.source, "publisher");
        assert_eq!(pd.source_url(), None);
        assert!(!pd.source_on_demand);
        assert_eq!(pd.source_on_demand_start_timeout, Duration::from_secs(10));
        assert_eq!(pd.source_on_demand_close_after, Duration::from_secs(10));
        assert_eq!(pd.source_reconnect_grace, Duration::from_secs(10));
        assert_eq!(pd.rtsp_transport, SourceTransport::Automatic);
        assert!(!pd.override_publisher);
        assert_eq!(pd.max_readers, 0);
        assert_eq!(c.paths, [(ALL_OTHERS.to_string(), pd.clone())]);
        assert_eq!(c.path_conf("any/name"), Some(pd));
        assert!(c.pulled_paths().is_empty());
    }

    #[test]
    fn empty_or_comment_only_document_is_the_default() {
        assert_eq!(parse(""), Config::default());
        assert_eq!(parse("# nothing here\n\n"), Config::default());
        assert_eq!(parse("paths:\npathDefaults:\n"), Config::default());
    }

    #[test]
    fn shipped_config_file_equals_the_defaults() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/hubcast.yml");
        match Config::load(&file) {
            Ok(c) => assert_eq!(c, Config::default()),
            Err(e) => panic!("{e}"),
        }
        // Every key is written out with its default, not only left to the built-in value.
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for (key, _) in TOP_SECTION.keys {
            // The singular MediaMTX spelling is an alias, described next to the plural key.
            if *key != "webrtcAllowOrigin" {
                let line = format!("{key}:");
                assert!(lines.iter().any(|l| l.starts_with(&line)), "{key}");
            }
        }
        for (key, _) in PATH_SECTION.keys {
            let line = format!("  {key}:");
            assert!(lines.iter().any(|l| l.starts_with(&line)), "{key}");
        }
    }

    const FULL: &str = "\
logLevel: debug
readTimeout: 1m30s
writeTimeout: 500ms
writeQueueSize: 1024
api: no
apiAddress: :9000
metrics: yes
metricsAddress: 0.0.0.0:9100
pprof: no
pprofAddress: '[::1]:6060'
rtsp: no
rtspTransports: [tcp]
rtspAddress: 127.0.0.1:0
rtpAddress: '[::1]:9000'
rtcpAddress: localhost:9001
webrtc: yes
webrtcAddress: :0
webrtcLocalUDPAddress: 10.0.0.1:8189
webrtcAdditionalHosts: [192.168.1.5, media.example.com]
webrtcICEServers2:
  - url: stun:stun.l.google.com:19302
  - url: turns:turn.example.com:5349
    username: user
    password: '1234'
webrtcHandshakeTimeout: 2h
webrtcAllowOrigins: ['https://example.com', 'http://*.example.org']
webrtcSRTPProfiles: [AEAD_AES_256_GCM, AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM]
webrtcMaxSessions: 50
authMethod: jwt
authInternalUsers:
  - user: any
    ips: []
    permissions: [read]
  - user: admin
    pass: 'sha256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w='
    ips: [10.0.0.0/8, 192.168.1.5, '::1', 'fd00::/8']
    permissions:
      - action: publish
        path: cam
      - action: read
        path: '~^cam[0-9]+$'
      - action: playback
        path:
      - action: api
authHTTPAddress: http://127.0.0.1:9000/auth
authHTTPExclude: []
authJWTJWKS: https://idp.example.com/.well-known/jwks.json
authJWTClaimKey: perms
authJWTExclude:
  - action: read
    path: public
pathDefaults:
  source: publisher
  sourceOnDemand: yes
  sourceOnDemandStartTimeout: 5s
  sourceOnDemandCloseAfter: 1m
  sourceReconnectGrace: 0s
  rtspTransport: tcp
  overridePublisher: true
  maxReaders: 7
paths:
  cam:
    maxReaders: 1
    source: rtsps://admin:secret@192.168.1.10:322/stream1?channel=1
    sourceOnDemand: no
    sourceReconnectGrace: 30s
    rtspTransport: udp
  ~^(a|b)/[0-9]+$:
    overridePublisher: false
  all_others:
";

    #[test]
    fn full_file_round_trips() {
        let c = parse(FULL);
        let pd = PathConf {
            source: "publisher".to_string(),
            source_on_demand: true,
            source_on_demand_start_timeout: Duration::from_secs(5),
            source_on_demand_close_after: Duration::from_secs(60),
            source_reconnect_grace: Duration::ZERO,
            rtsp_transport: SourceTransport::Tcp,
            override_publisher: true,
            max_readers: 7,
        };
        let cam = PathConf {
            source: "rtsps://admin:secret@192.168.1.10:322/stream1?channel=1".into(),
            source_on_demand: false,
            source_reconnect_grace: Duration::from_secs(30),
            rtsp_transport: SourceTransport::Udp,
            max_readers: 1,
            ..pd.clone()
        };
        let expected = Config {
            log_level: LogLevel::Debug,
            read_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_millis(500),
            write_queue_size: 1024,
            api: false,
            api_address: addr("0.0.0.0:9000"),
            metrics: true,
            metrics_address: addr("0.0.0.0:9100"),
            pprof: false,
            pprof_address: addr("[::1]:6060"),
            rtsp: false,
            rtsp_transports: vec![RtspTransport::Tcp],
            rtsp_address: addr("127.0.0.1:0"),
            rtp_address: addr("[::1]:9000"),
            rtcp_address: addr("127.0.0.1:9001"),
            webrtc: true,
            webrtc_address: addr("0.0.0.0:0"),
            webrtc_local_udp_address: addr("10.0.0.1:8189"),
            webrtc_additional_hosts: vec!["192.168.1.5".into(), "media.example.com".into()],
            webrtc_ice_servers2: vec![
                IceServer {
                    url: "stun:stun.l.google.com:19302".into(),
                    username: String::new(),
                    password: String::new(),
                },
                IceServer {
                    url: "turns:turn.example.com:5349".into(),
                    username: "user".into(),
                    password: "1234".into(),
                },
            ],
            webrtc_handshake_timeout: Duration::from_secs(7200),
            webrtc_allow_origins: vec!["https://example.com".into(), "http://*.example.org".into()],
            webrtc_srtp_profiles: vec![
                SrtpProfile::AeadAes256Gcm,
                SrtpProfile::AesCm128HmacSha1_80,
                SrtpProfile::AeadAes128Gcm,
            ],
            webrtc_max_sessions: 50,
            auth_method: AuthMethod::Jwt,
            auth_internal_users: vec![
                AuthUser {
                    user: "any".into(),
                    pass: String::new(),
                    ips: Vec::new(),
                    permissions: vec![Permission::any_path(AuthAction::Read)],
                },
                AuthUser {
                    user: "admin".into(),
                    pass: "sha256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w=".into(),
                    ips: ["10.0.0.0/8", "192.168.1.5/32", "::1/128", "fd00::/8"]
                        .iter()
                        .map(|n| n.parse().unwrap_or_else(|e| panic!("{n}: {e}")))
                        .collect(),
                    permissions: vec![
                        Permission {
                            action: AuthAction::Publish,
                            path: Some("cam".into()),
                        },
                        Permission {
                            action: AuthAction::Read,
                            path: Some("~^cam[0-9]+$".into()),
                        },
                        Permission::any_path(AuthAction::Playback),
                        Permission::any_path(AuthAction::Api),
                    ],
                },
            ],
            auth_http_address: "http://127.0.0.1:9000/auth".into(),
            auth_http_exclude: Vec::new(),
            auth_jwt_jwks: "https://idp.example.com/.well-known/jwks.json".into(),
            auth_jwt_claim_key: "perms".into(),
            auth_jwt_exclude: vec![Permission {
                action: AuthAction::Read,
                path: Some("public".into()),
            }],
            path_defaults: pd.clone(),
            paths: vec![
                ("cam".into(), cam.clone()),
                (
                    "~^(a|b)/[0-9]+$".into(),
                    PathConf {
                        override_publisher: false,
                        ..pd.clone()
                    },
                ),
                (ALL_OTHERS.into(), pd.clone()),
            ],
        };
        assert_eq!(c, expected);
        assert_eq!(c.pulled_paths(), [("cam", &cam)]);
        assert_eq!(
            cam.source_url(),
            Some("rtsps://admin:secret@192.168.1.10:322/stream1?channel=1")
        );
    }

    #[test]
    fn booleans_accept_yes_no_true_false() {
        for (text, want) in [("yes", true), ("true", true), ("Yes", true), ("no", false)] {
            assert_eq!(parse(&format!("rtsp: {text}")).rtsp, want, "{text}");
        }
        assert!(!parse("webrtc: false").webrtc);
        assert!(!parse("webrtc: 'no'").webrtc);
    }

    #[test]
    fn path_precedence_is_exact_then_regex_in_order_then_all_others() {
        let c = parse(
            "paths:\n  ~^cam.*:\n    maxReaders: 2\n  ~^cam1$:\n    maxReaders: 3\n  \
             cam1:\n    maxReaders: 1\n  all_others:\n    maxReaders: 9\n",
        );
        let readers = |name: &str| c.path_conf(name).map(|p| p.max_readers);
        assert_eq!(readers("cam1"), Some(1), "exact name beats any regex");
        assert_eq!(readers("cam2"), Some(2), "first matching regex wins");
        assert_eq!(readers("other"), Some(9), "all_others catches the rest");
    }

    #[test]
    fn regex_must_match_the_whole_name() {
        let c = parse("paths:\n  ~cam[0-9]:\n");
        assert!(c.path_conf("cam1").is_some());
        assert!(c.path_conf("cam12").is_none());
        assert!(c.path_conf("xcam1").is_none());
    }

    #[test]
    fn without_all_others_unlisted_paths_do_not_exist() {
        let c = parse("paths:\n  cam:\n");
        assert!(c.path_conf("cam").is_some());
        assert!(c.path_conf("other").is_none());
        let c = parse("paths: {}");
        assert!(c.path_conf("cam").is_none());
    }

    #[test]
    fn all_is_an_alias_of_all_others() {
        let c = parse("paths:\n  all:\n    maxReaders: 4\n");
        assert_eq!(c.path_conf("x").map(|p| p.max_readers), Some(4));
        let e = refuse("paths:\n  all:\n  all_others:\n");
        assert_mentions(&e, &["line 3", "listed twice"]);
    }

    #[test]
    fn path_defaults_merge_under_paths_whatever_the_key_order() {
        let c = parse(
            "paths:\n  cam:\n    maxReaders: 3\n  empty:\n  other: {}\n\
             pathDefaults:\n  overridePublisher: yes\n  maxReaders: 5\n",
        );
        let cam = c.path_conf("cam");
        assert_eq!(
            cam.map(|p| (p.override_publisher, p.max_readers)),
            Some((true, 3))
        );
        for name in ["empty", "other"] {
            assert_eq!(c.path_conf(name), Some(&c.path_defaults), "{name}");
        }
        assert!(c.path_defaults.override_publisher);
        assert_eq!(c.path_defaults.max_readers, 5);
        // Without a `paths` key the built-in all_others entry inherits pathDefaults too.
        let c = parse("pathDefaults:\n  maxReaders: 2\n");
        assert_eq!(c.path_conf("x").map(|p| p.max_readers), Some(2));
    }

    #[test]
    fn unknown_top_level_key_names_key_line_and_suggestion() {
        let e = refuse("logLevel: info\nrtsp: yes\nrtspAdress: :8554\n");
        assert_eq!(
            e,
            "line 3 column 1: unknown key \"rtspAdress\" (did you mean \"rtspAddress\"?)"
        );
        let e = refuse("completelyDifferent: 1\n");
        assert_mentions(&e, &["unknown key \"completelyDifferent\"", "line 1"]);
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn unknown_key_inside_a_path_names_path_key_and_line() {
        let e = refuse("paths:\n  cam:\n    maxReaders: 1\n    overidePublisher: yes\n");
        assert_eq!(
            e,
            "line 4 column 5: paths.cam: unknown key \"overidePublisher\" \
             (did you mean \"overridePublisher\"?)"
        );
        let e = refuse("pathDefaults:\n  sorce: publisher\n");
        assert_mentions(&e, &["line 2", "pathDefaults", "\"sorce\"", "\"source\""]);
    }

    #[test]
    fn mediamtx_keys_not_implemented_are_refused_by_name() {
        for key in [
            "hls: no",
            "srt: no",
            "rtmp: no",
            "record: no",
            "hlsAddress: :8888",
        ] {
            let e = refuse(&format!("rtsp: yes\n{key}\n"));
            let name = key.split(':').next().unwrap_or_default();
            assert_mentions(
                &e,
                &[&format!("{name:?}"), "not supported by hubcast", "line 2"],
            );
        }
        let e = refuse("paths:\n  cam:\n    record: yes\n");
        assert_mentions(&e, &["paths.cam", "\"record\"", "not supported", "line 3"]);
        let e = refuse("paths:\n  cam:\n    source: rtmp://10.0.0.1/live\n");
        assert_mentions(&e, &["paths.cam.source", "not supported", "line 3"]);
        let e = refuse("webrtcICEServers2:\n  - url: stun:x\n    clientOnly: yes\n");
        assert_mentions(&e, &["\"clientOnly\"", "not supported"]);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = refuse("paths:\n  cam:\n    overridePublisher: maybe\n");
        assert_mentions(
            &e,
            &[
                "line 3",
                "paths.cam.overridePublisher",
                "expected a boolean",
            ],
        );
        let e = refuse("rtsp: [yes]\n");
        assert_mentions(&e, &["rtsp:", "expected a boolean"]);
        let e = refuse("writeQueueSize: lots\n");
        assert_mentions(&e, &["writeQueueSize", "line 1"]);
        let e = refuse("paths:\n  cam:\n    maxReaders: -1\n");
        assert_mentions(&e, &["paths.cam.maxReaders", ">= 0"]);
        let e = refuse("paths: [cam]\n");
        assert_mentions(&e, &["paths", "mapping"]);
        let e = refuse("just a string\n");
        assert_mentions(&e, &["mapping of configuration keys"]);
    }

    #[test]
    fn bad_addresses_are_refused_with_the_key() {
        let e = refuse("rtspAddress: foo:bar\n");
        assert_mentions(
            &e,
            &[
                "rtspAddress: invalid address \"foo:bar\"",
                "invalid port \"bar\"",
            ],
        );
        assert_eq!(Config::from_yaml_str("rtspAddress: foo:bar").ok(), None);
        for (bad, why) in [
            ("8554", "missing ':'"),
            ("::1:8554", "brackets"),
            ("1.2.3.4:70000", "invalid port"),
            ("1.2.3.4", "missing port"),
            ("bad host:1", "not an IP address or host name"),
            ("'[nope]:1'", "not an IPv6 address"),
            ("''", "missing port"),
        ] {
            let e = refuse(&format!("webrtcAddress: {bad}\n"));
            assert_mentions(&e, &["webrtcAddress", why]);
        }
    }

    #[test]
    fn addresses_parse_like_mediamtx() {
        let ok = |t: &str| parse_address(t).ok();
        assert_eq!(ok(":8554"), Some(addr("0.0.0.0:8554")));
        assert_eq!(ok("127.0.0.1:8554"), Some(addr("127.0.0.1:8554")));
        assert_eq!(ok("[::1]:8554"), Some(addr("[::1]:8554")));
        assert_eq!(ok("LOCALHOST:1"), Some(addr("127.0.0.1:1")));
        assert_eq!(ok(":0"), Some(addr("0.0.0.0:0")));
        assert_eq!(ok(":+80"), None);
        assert_eq!(ok(":"), None);
    }

    #[test]
    fn bad_durations_are_refused_with_the_key() {
        let e = refuse("readTimeout: 10\n");
        assert_mentions(&e, &["readTimeout", "use a unit, e.g. 10s", "line 1"]);
        for (bad, why) in [
            ("10x", "unknown unit \"x\""),
            ("-5s", "negative"),
            ("0s", "greater than 0"),
            ("s", "invalid duration"),
            ("''", "empty duration"),
            ("1.5", "missing unit"),
        ] {
            let e = refuse(&format!("webrtcHandshakeTimeout: {bad}\n"));
            assert_mentions(&e, &["webrtcHandshakeTimeout", why]);
        }
    }

    #[test]
    fn durations_parse_like_go() {
        let ok = |t: &str| parse_duration(t).ok();
        assert_eq!(ok("10s"), Some(Duration::from_secs(10)));
        assert_eq!(ok("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(ok("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(ok("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(ok("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(ok(".5m"), Some(Duration::from_secs(30)));
        assert_eq!(ok("1us"), Some(Duration::from_micros(1)));
        assert_eq!(ok("1\u{b5}s"), Some(Duration::from_micros(1)));
        assert_eq!(ok("3ns"), Some(Duration::from_nanos(3)));
        assert_eq!(ok("99999999999999999999999999h"), None);
        assert_eq!(ok("10"), None);
        // Like Go, a bare zero needs no unit.
        assert_eq!(ok("0"), Some(Duration::ZERO));
        assert_eq!(ok("+0"), Some(Duration::ZERO));
        assert_eq!(ok("00"), None);
    }

    #[test]
    fn bad_regex_is_refused_with_its_line() {
        let e = refuse("paths:\n  cam:\n  ~^(unclosed:\n");
        assert_mentions(
            &e,
            &["line 3", "paths", "invalid regular expression", "unclosed"],
        );
        let e = refuse("paths:\n  '~':\n");
        assert_mentions(&e, &["empty regular expression"]);
    }

    #[test]
    fn write_queue_size_must_be_a_power_of_two() {
        for bad in ["0", "500", "-512"] {
            let e = refuse(&format!("writeQueueSize: {bad}\n"));
            assert_mentions(&e, &["writeQueueSize", "line 1"]);
        }
        let e = refuse("writeQueueSize: 500\n");
        assert_mentions(&e, &["power of two", "500"]);
        assert_eq!(parse("writeQueueSize: 1").write_queue_size, 1);
    }

    #[test]
    fn invalid_path_names_are_refused() {
        for (bad, why) in [
            ("..", "\"..\" segment"),
            ("a/../b", "\"..\" segment"),
            ("a/./b", "\".\" segment"),
            ("a//b", "empty segment"),
            ("/a", "start or end with '/'"),
            ("a/", "start or end with '/'"),
            ("a b", "character ' '"),
            ("%2e%2e", "character '%'"),
            ("", "empty"),
            ("caf\u{e9}", "character"),
        ] {
            match validate_path_name(bad) {
                Ok(()) => panic!("{bad:?} should be refused"),
                Err(e) => assert_mentions(&e.to_string(), &[&format!("{bad:?}"), why]),
            }
        }
        let long = "a".repeat(MAX_PATH_NAME_LEN + 1);
        assert!(validate_path_name(&long).is_err());
        for good in [
            "cam",
            "a/b/c",
            "live.stream-1_x~y",
            &"a".repeat(MAX_PATH_NAME_LEN),
        ] {
            assert!(validate_path_name(good).is_ok(), "{good:?}");
        }
        let e = refuse("paths:\n  ok:\n  a//b:\n");
        assert_mentions(
            &e,
            &["line 3", "invalid path name \"a//b\"", "empty segment"],
        );
        let e = refuse("paths:\n  '..':\n");
        assert_mentions(&e, &["line 2", "invalid path name"]);
        let e = refuse("paths:\n  cam:\n  cam:\n");
        assert_mentions(&e, &["line 3", "listed twice"]);
    }

    #[test]
    fn non_yaml_garbage_is_refused_with_a_location() {
        match Config::from_yaml_str("rtsp: yes\n  : : [\n\t{{{") {
            Ok(c) => panic!("parsed garbage as {c:?}"),
            Err(e) => assert!(e.line().is_some(), "{e}"),
        }
        let e = refuse("paths:\n  cam: {\n");
        assert!(e.starts_with("line "), "{e}");
        let e = refuse("rtsp: yes\n---\nrtsp: no\n");
        assert_mentions(&e, &["more than one document"]);
    }

    #[test]
    fn multicast_transport_is_refused_clearly() {
        let e = refuse("rtspTransports: [udp, multicast, tcp]\n");
        assert_mentions(&e, &["rtspTransports", "multicast", "not supported"]);
        let e = refuse("rtspTransports: [udp, quic]\n");
        assert_mentions(&e, &["unknown RTSP transport \"quic\""]);
        let e = refuse("rtspTransports: []\n");
        assert_mentions(&e, &["rtspTransports", "must not be empty"]);
        let e = refuse("rtspTransports: [tcp, tcp]\n");
        assert_mentions(&e, &["tcp is listed twice"]);
    }

    #[test]
    fn srtp_profiles_are_checked() {
        let e = refuse("webrtcSRTPProfiles: []\n");
        assert_mentions(&e, &["webrtcSRTPProfiles", "must not be empty"]);
        let e = refuse("webrtcSRTPProfiles: [AES_CM_128_HMAC_SHA1_32]\n");
        assert_mentions(&e, &["unknown SRTP profile", "AEAD_AES_128_GCM"]);
        let c = parse("webrtcSRTPProfiles: [AEAD_AES_128_GCM]\n");
        assert_eq!(c.webrtc_srtp_profiles, [SrtpProfile::AeadAes128Gcm]);
        for (name, profile) in SrtpProfile::NAMES {
            assert_eq!(profile.as_str(), *name);
        }
        use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile as P;
        assert_eq!(
            SrtpProfile::AesCm128HmacSha1_80.to_dtls(),
            P::Srtp_Aes128_Cm_Hmac_Sha1_80
        );
    }

    #[test]
    fn allow_origin_accepts_the_mediamtx_singular_key() {
        let c = parse("webrtcAllowOrigin: 'https://a.example'\n");
        assert_eq!(c.webrtc_allow_origins, ["https://a.example"]);
        let e = refuse("webrtcAllowOrigin: '*'\nwebrtcAllowOrigins: ['*']\n");
        assert_mentions(&e, &["webrtcAllowOrigin", "webrtcAllowOrigins", "both"]);
        let e = refuse("webrtcAllowOrigins: [example.com]\n");
        assert_mentions(&e, &["webrtcAllowOrigins[0]", "needs a scheme"]);
        let e = refuse("webrtcAllowOrigins: ['https://example.com/']\n");
        assert_mentions(&e, &["trailing '/'"]);
    }

    #[test]
    fn ice_servers_and_hosts_are_checked() {
        let e = refuse("webrtcICEServers2:\n  - url: http://x\n");
        assert_mentions(&e, &["webrtcICEServers2[0].url", "stun:, turn: or turns:"]);
        let e = refuse("webrtcICEServers2:\n  - url: turn:t.example:3478\n");
        assert_mentions(&e, &["needs a username and a password"]);
        let e = refuse("webrtcICEServers2:\n  - username: u\n");
        assert_mentions(&e, &["missing key \"url\""]);
        let e = refuse("webrtcAdditionalHosts: ['not a host']\n");
        assert_mentions(
            &e,
            &["webrtcAdditionalHosts[0]", "not an IP address or host name"],
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = refuse("rtsp: yes\nrtsp: no\n");
        assert_mentions(&e, &["line 2", "duplicate key \"rtsp\""]);
    }

    #[test]
    fn load_reports_the_file_name() {
        let dir = std::env::temp_dir().join(format!("hubcast-config-test-{}", std::process::id()));
        let write = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("x.yml"), "rtsp: yes\n\nrtspAdress: :1\n"));
        assert!(write.is_ok(), "{write:?}");
        let file = dir.join("x.yml");
        let e = Config::load(&file).map(drop).map_err(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            e,
            Err(format!(
                "{}: line 3 column 1: unknown key \"rtspAdress\" (did you mean \"rtspAddress\"?)",
                file.display()
            ))
        );
        let missing = Config::load(Path::new("/nonexistent/hubcast.yml"));
        assert!(matches!(missing, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn api_metrics_and_pprof_toggles_and_addresses() {
        let c = parse(
            "api: no\napiAddress: :9997\nmetrics: false\nmetricsAddress: 10.0.0.1:9100\n\
             pprof: 'no'\npprofAddress: localhost:6060\n",
        );
        assert_eq!(
            (c.api, c.metrics, c.pprof),
            (false, false, false),
            "toggles"
        );
        assert_eq!(c.api_address, addr("0.0.0.0:9997"));
        assert_eq!(c.metrics_address, addr("10.0.0.1:9100"));
        assert_eq!(c.pprof_address, addr("127.0.0.1:6060"));
        // Each toggle is its own key: turning one off leaves the others alone.
        let c = parse("metrics: no\n");
        assert!(c.api && !c.metrics && c.pprof);
        let c = parse("api: yes\npprof: true\n");
        assert!(c.api && c.pprof);

        let e = refuse("rtsp: yes\napiAddress: 9997\n");
        assert_mentions(&e, &["line 2", "apiAddress", "missing ':'"]);
        let e = refuse("metrics: maybe\n");
        assert_mentions(&e, &["metrics:", "expected a boolean", "line 1"]);
        let e = refuse("metricsAddress: '[::1]'\n");
        assert_mentions(&e, &["metricsAddress", "port"]);
        let e = refuse("pprofAddress: 1.2.3.4:99999\n");
        assert_mentions(&e, &["pprofAddress", "invalid port"]);
        let e = refuse("pprof: [yes]\n");
        assert_mentions(&e, &["pprof:", "expected a boolean"]);
        let e = refuse("api: yes\napi: no\n");
        assert_mentions(&e, &["line 2", "duplicate key \"api\""]);
    }

    #[test]
    fn the_rest_of_the_api_metrics_and_pprof_families_stays_refused() {
        for key in [
            "apiEncryption: no",
            "apiServerKey: server.key",
            "apiServerCert: server.crt",
            "apiAllowOrigin: '*'",
            "apiTrustedProxies: []",
            "metricsEncryption: no",
            "metricsServerKey: server.key",
            "pprofEncryption: no",
            "pprofTrustedProxies: []",
            "playbackAddress: :9996",
        ] {
            let e = refuse(&format!("api: yes\n{key}\n"));
            let name = key.split(':').next().unwrap_or_default();
            assert_mentions(
                &e,
                &[&format!("{name:?}"), "not supported by hubcast", "line 2"],
            );
        }
        for key in [
            "sourceFingerprint: abc",
            "sourceRedirect: rtsp://x/y",
            "sourceProtocol: tcp",
            "sourceAnyPortEnable: no",
            "rtspAnyPort: no",
            "rtspRangeType: clock",
            "rtspUDPSourcePortRange: [10000, 65535]",
        ] {
            let e = refuse(&format!("paths:\n  cam:\n    {key}\n"));
            let name = key.split(':').next().unwrap_or_default();
            assert_mentions(
                &e,
                &[
                    "paths.cam",
                    &format!("{name:?}"),
                    "not supported by hubcast",
                    "line 3",
                ],
            );
        }
    }

    #[test]
    fn accepted_keys_are_never_refused_as_unsupported() {
        for (name, _) in TOP_SECTION.keys {
            assert!(!unsupported_top_key(name), "{name}");
            assert!(TOP_SECTION.lookup(name).is_ok(), "{name}");
        }
        for (name, _) in PATH_SECTION.keys {
            assert!(!unsupported_path_key(name), "{name}");
            assert!(PATH_SECTION.lookup(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn webrtc_max_sessions_is_a_count() {
        assert_eq!(parse("webrtcMaxSessions: 25").webrtc_max_sessions, 25);
        assert_eq!(parse("webrtcMaxSessions: 0").webrtc_max_sessions, 0);
        assert_eq!(parse("webrtcMaxSessions:").webrtc_max_sessions, 0);
        let e = refuse("webrtc: yes\nwebrtcMaxSessions: -1\n");
        assert_mentions(&e, &["line 2", "webrtcMaxSessions", ">= 0"]);
        let e = refuse("webrtcMaxSessions: many\n");
        assert_mentions(&e, &["webrtcMaxSessions", ">= 0"]);
        let e = refuse("webrtcMaxSesions: 3\n");
        assert_mentions(&e, &["did you mean \"webrtcMaxSessions\"?"]);
    }

    #[test]
    fn rtsp_source_urls_are_accepted() {
        for url in [
            "rtsp://cam.local/live",
            "rtsp://admin:p%40ss@10.0.0.1:8554/live/ch1",
            "rtsp://admin:a:b@c@10.0.0.1/x",
            "rtsp://viewer@cam.local:554",
            "rtsps://[::1]:322/",
            "rtsps://[fe80::1]/stream",
            "rtsp://10.0.0.1",
            "rtsp://cam.local?channel=1&subtype=0",
        ] {
            let c = parse(&format!("paths:\n  cam:\n    source: '{url}'\n"));
            let cam = c.path_conf("cam");
            assert_eq!(cam.and_then(PathConf::source_url), Some(url), "{url}");
            assert_eq!(c.pulled_paths().len(), 1, "{url}");
        }
        let c = parse("paths:\n  cam:\n    source: publisher\n  other:\n    source:\n");
        assert!(c.pulled_paths().is_empty());
        assert_eq!(
            c.path_conf("other").map(|p| p.source.as_str()),
            Some("publisher")
        );
    }

    #[test]
    fn bad_source_urls_are_refused_with_the_key() {
        for (bad, why) in [
            ("rtsp://", "missing host"),
            ("rtsp:///live", "missing host"),
            ("rtsp://user:pw@/live", "missing host"),
            ("rtsp://:554/live", "missing host"),
            ("rtsp://cam:port/x", "invalid port \"port\""),
            ("rtsp://cam:70000/x", "invalid port \"70000\""),
            ("rtsp://cam:0/x", "expected 1 to 65535"),
            ("rtsp://cam:/x", "invalid port \"\""),
            ("rtsp://cam:+5/x", "invalid port"),
            ("rtsp://bad_host/x", "not an IP address or host name"),
            ("rtsp://::1/x", "brackets"),
            ("rtsp://[zz]:554/x", "not an IPv6 address"),
            ("rtsp://[::1/x", "missing ']'"),
            ("rtsp://[::1]x/y", "after ']'"),
            ("rtsp://cam/a b", "character ' '"),
            ("rtsp://:pw@cam/x", "empty user name"),
            ("RTSP://cam/x", "lower case"),
            ("rtsp:/cam/x", "invalid source"),
            ("foo", "invalid source \"foo\""),
            ("cam.local:554", "invalid source"),
            ("''", "invalid source \"\""),
        ] {
            let e = refuse(&format!("paths:\n  cam:\n    source: {bad}\n"));
            assert_mentions(&e, &["line 3", "paths.cam.source", why]);
            assert!(!e.contains("not supported"), "{e}");
        }
        let e = refuse("paths:\n  cam:\n    source: [rtsp://cam/x]\n");
        assert_mentions(&e, &["paths.cam.source", "rtsp:// or rtsps:// URL"]);
    }

    #[test]
    fn passwords_are_kept_out_of_source_errors() {
        let e = refuse("paths:\n  cam:\n    source: rtsp://admin:hunter2@cam:99999/x\n");
        assert_mentions(&e, &["invalid port", "admin:***@cam:99999/x"]);
        assert!(!e.contains("hunter2"), "{e}");
        let e = refuse("paths:\n  cam:\n    source: 'rt sp://admin:hunter2@cam/x'\n");
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(redact_password("rtsp://cam/a:b@c"), "rtsp://cam/a:b@c");
        assert_eq!(redact_password("rtsp://u@cam/x"), "rtsp://u@cam/x");
    }

    #[test]
    fn other_source_kinds_are_not_supported_by_hubcast() {
        for (bad, shown) in [
            ("rtmp://10.0.0.1/live", "\"rtmp://\""),
            ("rtmps://10.0.0.1/live", "\"rtmps://\""),
            ("'srt://10.0.0.1:9000?streamid=read:cam'", "\"srt://\""),
            ("udp://238.0.0.1:1234", "\"udp://\""),
            ("http://cam/stream.m3u8", "\"http://\""),
            ("https://cam/stream.m3u8", "\"https://\""),
            ("whep://cam/live/whep", "\"whep://\""),
            ("redirect", "\"redirect\""),
            ("rpiCamera", "\"rpiCamera\""),
        ] {
            let e = refuse(&format!("paths:\n  cam:\n    source: {bad}\n"));
            assert_mentions(
                &e,
                &[
                    "line 3",
                    "paths.cam.source",
                    shown,
                    "not supported by hubcast",
                ],
            );
        }
    }

    #[test]
    fn a_pulled_source_needs_a_path_with_a_fixed_name() {
        let fixed = "a pulled source needs a path with a fixed name";
        let e = refuse("paths:\n  cam:\n  ~^cam([0-9]+)$:\n    source: rtsp://10.0.0.1/cam$G1\n");
        assert_mentions(&e, &["line 4", "paths.~^cam([0-9]+)$.source", fixed, "$G1"]);
        for name in ["all_others", "all"] {
            let e = refuse(&format!(
                "paths:\n  {name}:\n    source: rtsp://10.0.0.1/live\n"
            ));
            assert_mentions(
                &e,
                &[
                    "line 3",
                    &format!("paths.{name}.source"),
                    fixed,
                    "every other path",
                ],
            );
        }
        let e = refuse("rtsp: yes\npathDefaults:\n  source: rtsp://10.0.0.1/live\n");
        assert_mentions(&e, &["line 3", "pathDefaults.source", fixed]);
        // "publisher" stays fine everywhere, and the other source keys may be set anywhere.
        let c = parse(
            "pathDefaults:\n  source: publisher\n  sourceOnDemand: yes\n\
             paths:\n  ~^cam.*$:\n    source: publisher\n  all_others:\n    source: publisher\n",
        );
        assert!(c.pulled_paths().is_empty());
        // An unsupported kind is reported as such even where no URL could go.
        let e = refuse("paths:\n  all_others:\n    source: rtmp://x/y\n");
        assert_mentions(&e, &["not supported by hubcast"]);
    }

    #[test]
    fn pulled_paths_are_fixed_names_with_url_sources_in_file_order() {
        let c = parse(
            "pathDefaults:\n  sourceOnDemand: yes\n  rtspTransport: tcp\n\
             paths:\n  zeta:\n    source: rtsp://10.0.0.2/b\n  alpha:\n  \
             ~^x.*$:\n  mid:\n    source: rtsps://cam.example.com/c\n    sourceOnDemand: no\n  \
             all_others:\n",
        );
        let pulled: Vec<(&str, Option<&str>, bool, SourceTransport)> = c
            .pulled_paths()
            .into_iter()
            .map(|(n, p)| (n, p.source_url(), p.source_on_demand, p.rtsp_transport))
            .collect();
        assert_eq!(
            pulled,
            [
                (
                    "zeta",
                    Some("rtsp://10.0.0.2/b"),
                    true,
                    SourceTransport::Tcp
                ),
                (
                    "mid",
                    Some("rtsps://cam.example.com/c"),
                    false,
                    SourceTransport::Tcp
                ),
            ]
        );
        assert_eq!(c.path_conf("alpha").and_then(PathConf::source_url), None);
    }

    #[test]
    fn rtsp_transport_of_pulled_sources() {
        for (text, want) in [
            ("automatic", SourceTransport::Automatic),
            ("tcp", SourceTransport::Tcp),
            ("udp", SourceTransport::Udp),
        ] {
            let c = parse(&format!("paths:\n  cam:\n    rtspTransport: {text}\n"));
            assert_eq!(c.path_conf("cam").map(|p| p.rtsp_transport), Some(want));
            assert_eq!(want.as_str(), text);
            assert_eq!(want.to_string(), text);
        }
        let c = parse("pathDefaults:\n  rtspTransport: udp\npaths:\n  cam:\n    rtspTransport:\n");
        assert_eq!(
            c.path_conf("cam").map(|p| p.rtsp_transport),
            Some(SourceTransport::Udp)
        );
        let e = refuse("paths:\n  cam:\n    rtspTransport: multicast\n");
        assert_mentions(
            &e,
            &[
                "line 3",
                "paths.cam.rtspTransport",
                "\"multicast\" is not supported by hubcast",
            ],
        );
        let e = refuse("pathDefaults:\n  rtspTransport: quic\n");
        assert_mentions(
            &e,
            &[
                "pathDefaults.rtspTransport",
                "unknown RTSP transport \"quic\"",
                "automatic, tcp, udp",
            ],
        );
        let e = refuse("paths:\n  cam:\n    rtspTransport: [tcp]\n");
        assert_mentions(&e, &["paths.cam.rtspTransport", "automatic, tcp or udp"]);
    }

    #[test]
    fn source_durations_name_their_key() {
        let c = parse(
            "paths:\n  cam:\n    sourceOnDemandStartTimeout: 1m30s\n    \
             sourceOnDemandCloseAfter: 500ms\n    sourceReconnectGrace: 0s\n  other:\n    \
             sourceReconnectGrace: 0\n",
        );
        let cam = c.path_conf("cam");
        assert_eq!(
            cam.map(|p| (
                p.source_on_demand_start_timeout,
                p.source_on_demand_close_after,
                p.source_reconnect_grace
            )),
            Some((
                Duration::from_secs(90),
                Duration::from_millis(500),
                Duration::ZERO
            ))
        );
        assert_eq!(
            c.path_conf("other").map(|p| p.source_reconnect_grace),
            Some(Duration::ZERO)
        );
        for (key, bad, why) in [
            ("sourceOnDemandStartTimeout", "0s", "greater than 0"),
            ("sourceOnDemandStartTimeout", "10", "use a unit"),
            ("sourceOnDemandCloseAfter", "0", "greater than 0"),
            ("sourceOnDemandCloseAfter", "10y", "unknown unit \"y\""),
            ("sourceReconnectGrace", "-1s", "negative"),
            ("sourceReconnectGrace", "soon", "invalid duration"),
            ("sourceReconnectGrace", "5", "missing unit"),
        ] {
            let e = refuse(&format!("paths:\n  cam:\n    {key}: {bad}\n"));
            assert_mentions(&e, &["line 3", &format!("paths.cam.{key}"), why]);
            let e = refuse(&format!("pathDefaults:\n  {key}: {bad}\n"));
            assert_mentions(&e, &["line 2", &format!("pathDefaults.{key}"), why]);
        }
        let e = refuse("paths:\n  cam:\n    sourceOnDemand: sometimes\n");
        assert_mentions(&e, &["paths.cam.sourceOnDemand", "expected a boolean"]);
    }

    #[test]
    fn auth_method_and_urls() {
        for (text, want) in [
            ("internal", AuthMethod::Internal),
            ("http", AuthMethod::Http),
            ("jwt", AuthMethod::Jwt),
        ] {
            let c = parse(&format!(
                "authMethod: {text}\nauthHTTPAddress: http://a/b\nauthJWTJWKS: https://c/d\n"
            ));
            assert_eq!(c.auth_method, want);
            assert_eq!(want.to_string(), text);
        }
        let e = refuse("rtsp: yes\nauthMethod: ldap\n");
        assert_mentions(
            &e,
            &[
                "line 2",
                "authMethod",
                "unknown auth method \"ldap\"",
                "internal, http, jwt",
            ],
        );
        let e = refuse("authMethod: [internal]\n");
        assert_mentions(&e, &["authMethod", "internal, http or jwt"]);
        let e = refuse("authMethod: http\n");
        assert_mentions(&e, &["authMethod is \"http\"", "authHTTPAddress is empty"]);
        let e = refuse("authMethod: jwt\nauthJWTJWKS: ''\n");
        assert_mentions(&e, &["authMethod is \"jwt\"", "authJWTJWKS is empty"]);
        for (key, bad, why) in [
            (
                "authHTTPAddress",
                "localhost:9000/auth",
                "http:// or https://",
            ),
            ("authHTTPAddress", "ftp://x/auth", "http:// or https://"),
            ("authHTTPAddress", "not a url", "invalid URL"),
            ("authJWTJWKS", "'http://'", "invalid URL"),
            ("authJWTJWKS", "[http://a/b]", "an http:// or https:// URL"),
        ] {
            let e = refuse(&format!("rtsp: yes\n{key}: {bad}\n"));
            assert_mentions(&e, &["line 2", key, why]);
        }
        let e = refuse("authJWTClaimKey: ''\n");
        assert_mentions(&e, &["authJWTClaimKey", "must not be empty"]);
        assert_eq!(
            parse("authJWTClaimKey:\n").auth_jwt_claim_key,
            "mediamtx_permissions"
        );
        assert_eq!(parse("authHTTPAddress:\n").auth_http_address, "");
    }

    #[test]
    fn auth_users_parse_like_mediamtx() {
        let c = parse(
            "authInternalUsers:\n\
             - user: bob\n  pass: 1234\n  ips: ['10.0.0.0/8', 192.168.1.7, '2001:db8::/32']\n  \
             permissions:\n  - action: publish\n    path: cam\n  - action: read\n    \
             path: '~^cam[0-9]$'\n  - action: api\n    path:\n  - metrics\n\
             - user: any\n  pass:\n  ips:\n  permissions:\n",
        );
        let bob = &c.auth_internal_users[0];
        assert_eq!(bob.user, "bob");
        assert_eq!(bob.pass, "1234");
        let ips: Vec<String> = bob.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]);
        assert_eq!(
            bob.permissions,
            [
                Permission {
                    action: AuthAction::Publish,
                    path: Some("cam".into())
                },
                Permission {
                    action: AuthAction::Read,
                    path: Some("~^cam[0-9]$".into())
                },
                Permission::any_path(AuthAction::Api),
                Permission::any_path(AuthAction::Metrics),
            ]
        );
        let anyone = &c.auth_internal_users[1];
        assert_eq!((anyone.user.as_str(), anyone.pass.as_str()), ("any", ""));
        assert!(anyone.ips.is_empty() && anyone.permissions.is_empty());
        // An empty list is no user at all; the key absent is MediaMTX's default.
        assert!(parse("authInternalUsers: []\n")
            .auth_internal_users
            .is_empty());
        assert_eq!(
            parse("authInternalUsers:\n").auth_internal_users,
            Config::default().auth_internal_users
        );
        // The password never shows up in debug output.
        let debug = format!("{c:?}");
        assert!(!debug.contains("1234"), "{debug}");
        assert!(debug.contains("pass: \"***\""), "{debug}");
    }

    #[test]
    fn hashed_credentials_are_checked() {
        let sha = "sha256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w=";
        let argon = "argon2:$argon2id$v=19$m=4096,t=3,p=1$MTIzNDU2Nzg$\
                     Ux/LWeTgJQPyfMMJo1myR64+o8rALHoPmlE1i/TR+58";
        for pass in [sha, argon] {
            let c = parse(&format!(
                "authInternalUsers:\n- user: bob\n  pass: '{pass}'\n  permissions: [read]\n"
            ));
            assert_eq!(c.auth_internal_users[0].pass, pass);
            let c = parse(&format!(
                "authInternalUsers:\n- user: '{pass}'\n  pass: x\n  permissions: [read]\n"
            ));
            assert_eq!(c.auth_internal_users[0].user, pass);
        }
        for (bad, why) in [
            ("sha256:", "base64 of a SHA-256 digest"),
            ("sha256:hunter2", "base64 of a SHA-256 digest"),
            ("sha256:aHVudGVyMg==", "base64 of a SHA-256 digest"),
            (
                "SHA256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w=",
                "lower case",
            ),
            ("argon2:hunter2", "Argon2 PHC string"),
            (
                "argon2:$argon2id$v=19$m=4096,t=3,p=1$MTIzNDU2Nzg",
                "Argon2 PHC string",
            ),
            (
                "argon2:$pbkdf2$i=1000$MTIzNDU2Nzg$aGFzaGhhc2g",
                "Argon2 PHC string",
            ),
            (
                "argon2:$argon2id$v=19$m=1,t=0,p=1$MTIzNDU2Nzg$aGFzaGhhc2g",
                "Argon2 PHC string",
            ),
            (
                "Argon2:$argon2id$v=19$m=4096,t=3,p=1$MTIzNDU2Nzg$aGFzaGhhc2g",
                "lower case",
            ),
        ] {
            let e = refuse(&format!(
                "rtsp: yes\nauthInternalUsers:\n- user: bob\n  pass: '{bad}'\n"
            ));
            assert_mentions(&e, &["line 4", "authInternalUsers[0].pass", why]);
            // A password never appears in the message, not even a malformed hash.
            assert!(!e.contains("hunter2") && !e.contains("aGFzaGhhc2g"), "{e}");
            let e = refuse(&format!("authInternalUsers:\n- user: '{bad}'\n"));
            assert_mentions(&e, &["line 2", "authInternalUsers[0].user", why]);
        }
    }

    #[test]
    fn broken_auth_users_name_the_key() {
        for (yaml, parts) in [
            (
                "- user: bob\n  ips: [10.0.0.0/33]\n",
                &["line 3", "authInternalUsers[0].ips[0]", "\"10.0.0.0/33\""][..],
            ),
            (
                "- user: any\n- user: bob\n  ips: [10.0.0.0/8, not-an-ip]\n",
                &[
                    "line 4",
                    "authInternalUsers[1].ips[1]",
                    "invalid IP address",
                ],
            ),
            (
                "- user: bob\n  permissions:\n  - action: write\n",
                &[
                    "line 4",
                    "authInternalUsers[0].permissions[0].action",
                    "unknown action \"write\"",
                    "publish, read, playback, api, metrics, pprof",
                ],
            ),
            (
                "- user: bob\n  permissions: [publish, delete]\n",
                &[
                    "line 3",
                    "authInternalUsers[0].permissions[1]",
                    "unknown action \"delete\"",
                ],
            ),
            (
                "- user: bob\n  permissions:\n  - path: cam\n",
                &[
                    "authInternalUsers[0].permissions[0]",
                    "missing key \"action\"",
                ],
            ),
            (
                "- user: bob\n  permissions:\n  - action: read\n    path: 'a//b'\n",
                &[
                    "line 5",
                    "authInternalUsers[0].permissions[0].path",
                    "empty segment",
                ],
            ),
            (
                "- user: bob\n  permissions:\n  - action: read\n    path: '~^(cam'\n",
                &[
                    "line 5",
                    "permissions[0].path",
                    "invalid regular expression",
                ],
            ),
            (
                "- user: bob\n  permissions:\n  - action: api\n    path: cam\n",
                &["permissions[0]", "does not concern a path"],
            ),
            (
                "- user: bob\n  permissions:\n  - action: read\n    paths: cam\n",
                &["line 5", "unknown key \"paths\"", "did you mean \"path\"?"],
            ),
            (
                "- user: bob\n  password: x\n",
                &["line 3", "authInternalUsers[0]", "unknown key \"password\""],
            ),
            (
                "- user: bob\n  user: alice\n",
                &["line 3", "duplicate key \"user\""],
            ),
            (
                "- pass: x\n",
                &["authInternalUsers[0]", "missing key \"user\""],
            ),
            (
                "- user: ''\n",
                &["authInternalUsers[0].user", "must not be empty"],
            ),
            (
                "- user: any\n  pass: secret\n",
                &["authInternalUsers[0]", "would never be checked"],
            ),
            ("  bob\n", &["authInternalUsers", "sequence"]),
        ] {
            let e = refuse(&format!("authInternalUsers:\n{yaml}"));
            assert_mentions(&e, parts);
        }
        let e = refuse("authHTTPExclude:\n- action: playbacks\n");
        assert_mentions(
            &e,
            &["line 2", "authHTTPExclude[0].action", "unknown action"],
        );
        let e = refuse("authJWTExclude: [api, nope]\n");
        assert_mentions(&e, &["authJWTExclude[1]", "unknown action \"nope\""]);
        let e = refuse("authHTTPExclude: api\n");
        assert_mentions(&e, &["authHTTPExclude", "sequence"]);
    }

    #[test]
    fn auth_excludes_parse() {
        let c = parse(
            "authHTTPExclude:\n- action: read\n  path: public\n- api\nauthJWTExclude:\n\
             - action: playback\n",
        );
        assert_eq!(
            c.auth_http_exclude,
            [
                Permission {
                    action: AuthAction::Read,
                    path: Some("public".into())
                },
                Permission::any_path(AuthAction::Api)
            ]
        );
        assert_eq!(
            c.auth_jwt_exclude,
            [Permission::any_path(AuthAction::Playback)]
        );
        assert!(parse("authHTTPExclude: []\n").auth_http_exclude.is_empty());
        assert_eq!(
            parse("authHTTPExclude:\n").auth_http_exclude,
            Config::default().auth_http_exclude
        );
    }

    #[test]
    fn auth_keys_hubcast_does_not_implement_stay_refused() {
        for key in [
            "authJWTInHTTPQuery: no",
            "authJWTIssuer: x",
            "authJWTAudience: x",
            "authJWTJWKSFingerprint: x",
            "rtspAuthMethods: [basic]",
            "externalAuthenticationURL: http://x",
        ] {
            let e = refuse(&format!("rtsp: yes\n{key}\n"));
            let name = key.split(':').next().unwrap_or_default();
            assert_mentions(
                &e,
                &[&format!("{name:?}"), "not supported by hubcast", "line 2"],
            );
        }
        for key in ["authMetod: jwt", "authHttpAddress: http://x"] {
            let e = refuse(key);
            assert_mentions(&e, &["did you mean"]);
        }
    }
}
