//! The loader: serde visitors that read the YAML into the model, so every error names
//! its key, line and column.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};

use super::*;

/// Deserializes one mapping key: checks it against its section and refuses repeats, while the
/// YAML library still points at the key.
pub(super) struct KeySeed<'a, K: 'static> {
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
pub(super) struct ParseVisitor<T> {
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

pub(super) struct Address(SocketAddr);
deserialize_by_parsing!(Address, "an address such as \":8554\"", |t| {
    parse_address(t).map(Address)
});

/// A duration that must be positive: every duration here is a timeout, and 0 would fail at once.
pub(super) struct Timeout(Duration);
deserialize_by_parsing!(Timeout, "a duration such as \"10s\"", |t| {
    match parse_duration(t)? {
        d if d.is_zero() => Err(format!("{t:?}: must be greater than 0")),
        d => Ok(Timeout(d)),
    }
});

/// A duration where zero is meaningful ("not at all"), unlike a [`Timeout`].
pub(super) struct Delay(Duration);
deserialize_by_parsing!(Delay, "a duration such as \"10s\" (or 0s)", |t| {
    parse_duration(t).map(Delay)
});

pub(super) struct HostName(String);
deserialize_by_parsing!(HostName, "an IP address or host name", |t| {
    if t.parse::<IpAddr>().is_ok() || is_host_name(t) {
        Ok(HostName(t.to_string()))
    } else {
        Err(format!("{t:?} is not an IP address or host name"))
    }
});

/// A CORS origin as browsers send it ("https://example.com", no path), `*`, or a MediaMTX-style
/// wildcard ("http://*.example.com"); a bare host or a trailing '/' would never match anything.
pub(super) struct Origin(String);
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
pub(super) struct AuthUrl(String);
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
pub(super) struct ClaimKey(String);
deserialize_by_parsing!(ClaimKey, "a JWT claim name", |t| {
    if t.is_empty() {
        Err("the claim name must not be empty".to_string())
    } else {
        Ok(ClaimKey(t.to_string()))
    }
});

/// An `ips` entry: a network in CIDR notation or a single address.
pub(super) struct IpNetwork(IpNet);
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
pub(super) const SHA256_PREFIX: &str = "sha256:";
pub(super) const ARGON2_PREFIX: &str = "argon2:";

/// A `user` or `pass` value: plain text, `sha256:<base64 digest>` or `argon2:<PHC string>`.
/// The hashed forms are checked now, so a mangled hash stops startup instead of locking
/// everyone out. Messages never repeat the value: it may be a password.
pub(super) fn check_credential(text: &str) -> Result<(), String> {
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

pub(super) struct UserName(String);
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

pub(super) struct Password(String);
deserialize_by_parsing!(
    Password,
    "a password (plain, or a sha256:/argon2: hash)",
    |t| { check_credential(t).map(|()| Password(t.to_string())) }
);

/// A permission's `path`: empty (every path), a path name, or `~regex` (whole-name match).
pub(super) struct PermissionPath(Option<String>);
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

pub(super) struct PermissionVisitor;

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

pub(super) struct AuthUserVisitor;

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

pub(super) struct IceUrl(String);
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
pub(super) fn parse_source(text: &str) -> Result<String, String> {
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
pub(super) fn check_source_url(rest: &str) -> Result<(), String> {
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
pub(super) fn split_url_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
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
pub(super) enum PathScope<'a> {
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
pub(super) struct SourceSeed<'a>(PathScope<'a>);

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
pub(super) struct Nullable<S>(S);

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
pub(super) struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlagVisitor)
    }
}

pub(super) struct FlagVisitor;

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
pub(super) struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(CountVisitor)
    }
}

pub(super) struct CountVisitor;

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
pub(super) struct QueueSize(usize);

impl<'de> Deserialize<'de> for QueueSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(QueueSizeVisitor)
    }
}

/// Checks inside the visitor: an error raised after the value was read would lose its location.
pub(super) struct QueueSizeVisitor;

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
pub(super) struct NonEmpty<T>(Vec<T>);

impl<'de, T: Deserialize<'de> + PartialEq + fmt::Display> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(NonEmptyVisitor(PhantomData))
    }
}

pub(super) struct NonEmptyVisitor<T>(PhantomData<T>);

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

pub(super) struct IceServerVisitor;

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
pub(super) struct RawPath {
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
pub(super) struct RawPathSeed<'a>(PathScope<'a>);

impl<'de> DeserializeSeed<'de> for RawPathSeed<'_> {
    type Value = RawPath;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawPath, D::Error> {
        deserializer.deserialize_map(RawPathVisitor(self.0))
    }
}

pub(super) struct RawPathVisitor<'a>(PathScope<'a>);

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
pub(super) struct RawPaths(Vec<(String, Option<RawPath>)>);

impl<'de> Deserialize<'de> for RawPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawPathsVisitor)
    }
}

pub(super) struct RawPathsVisitor;

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
pub(super) struct PathNameSeed<'a> {
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

pub(super) fn check_path_key(name: &str) -> Result<(), String> {
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
pub(super) struct RawConfig {
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

pub(super) struct RawConfigVisitor;

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
    pub(super) fn into_config(self) -> Result<Config, String> {
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
