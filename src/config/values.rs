//! Values of single keys: log levels, transports, SRTP profiles, auth actions, addresses
//! and durations, each with its error message.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::*;

impl LogLevel {
    pub(super) const NAMES: &'static [(&'static str, LogLevel)] = &[
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

    pub(super) fn parse(text: &str) -> Result<Self, String> {
        parse_choice(text, "log level", Self::NAMES)
    }
}

impl RtspTransport {
    pub(super) const NAMES: &'static [(&'static str, RtspTransport)] =
        &[("udp", RtspTransport::Udp), ("tcp", RtspTransport::Tcp)];

    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    pub(super) fn parse(text: &str) -> Result<Self, String> {
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
    pub(super) const NAMES: &'static [(&'static str, SourceTransport)] = &[
        ("automatic", SourceTransport::Automatic),
        ("tcp", SourceTransport::Tcp),
        ("udp", SourceTransport::Udp),
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    pub(super) fn parse(text: &str) -> Result<Self, String> {
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
    pub(super) const NAMES: &'static [(&'static str, SrtpProfile)] = &[
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

    pub(super) fn parse(text: &str) -> Result<Self, String> {
        parse_choice(text, "SRTP profile", Self::NAMES)
    }
}

impl AuthMethod {
    pub(super) const NAMES: &'static [(&'static str, AuthMethod)] = &[
        ("internal", AuthMethod::Internal),
        ("http", AuthMethod::Http),
        ("jwt", AuthMethod::Jwt),
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }

    pub(super) fn parse(text: &str) -> Result<Self, String> {
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

    pub(super) const NAMES: &'static [(&'static str, AuthAction)] = &[
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

pub(super) fn name_of<T: Copy + PartialEq>(names: &[(&'static str, T)], value: T) -> &'static str {
    names
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("?", |(n, _)| n)
}

pub(super) fn parse_choice<T: Copy>(
    text: &str,
    what: &str,
    names: &[(&str, T)],
) -> Result<T, String> {
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

pub(super) fn split_host_port(text: &str) -> Result<(&str, &str), String> {
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

pub(super) fn parse_port(port: &str) -> Result<u16, String> {
    let digits_only = !port.is_empty() && port.chars().all(|c| c.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(p) if digits_only => Ok(p),
        _ => Err(format!("invalid port {port:?} (expected 0 to 65535)")),
    }
}

pub(super) fn resolve_host(host: &str, port: u16) -> Result<IpAddr, String> {
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
pub(super) fn is_host_name(text: &str) -> bool {
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

pub(super) fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

pub(super) fn unit_nanos(unit: &str) -> Option<u128> {
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
pub(super) fn term_nanos(int_part: &str, frac_part: &str, unit_ns: u128) -> Option<u128> {
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
