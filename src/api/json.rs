//! The configuration as the control API shows and takes it (MediaMTX key names), and small
//! JSON helpers. Patches are applied by merging JSON into the current configuration and
//! running the result through the same loader as the YAML file (JSON is YAML), so every
//! check and every error message is the file's.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::config::{Config, ConfigError, PathConf};

/// Go-style duration, as the config file writes them.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

/// `:8554` for all interfaces, like MediaMTX; `host:port` otherwise.
pub fn address(a: SocketAddr) -> String {
    if a.ip().is_unspecified() && a.is_ipv4() {
        format!(":{}", a.port())
    } else {
        a.to_string()
    }
}

pub fn path_conf(p: &PathConf) -> Map<String, Value> {
    let v = json!({
        "source": p.source,
        "sourceOnDemand": p.source_on_demand,
        "sourceOnDemandStartTimeout": duration(p.source_on_demand_start_timeout),
        "sourceOnDemandCloseAfter": duration(p.source_on_demand_close_after),
        "sourceReconnectGrace": duration(p.source_reconnect_grace),
        "rtspTransport": p.rtsp_transport.as_str(),
        "overridePublisher": p.override_publisher,
        "maxReaders": p.max_readers,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Top-level keys (everything but `pathDefaults` and `paths`).
pub fn global(c: &Config) -> Map<String, Value> {
    let v = json!({
        "logLevel": c.log_level.as_str(),
        "readTimeout": duration(c.read_timeout),
        "writeTimeout": duration(c.write_timeout),
        "writeQueueSize": c.write_queue_size,
        "api": c.api,
        "apiAddress": address(c.api_address),
        "metrics": c.metrics,
        "metricsAddress": address(c.metrics_address),
        "pprof": c.pprof,
        "pprofAddress": address(c.pprof_address),
        "rtsp": c.rtsp,
        "rtspTransports": c.rtsp_transports.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "rtspAddress": address(c.rtsp_address),
        "rtpAddress": address(c.rtp_address),
        "rtcpAddress": address(c.rtcp_address),
        "webrtc": c.webrtc,
        "webrtcAddress": address(c.webrtc_address),
        "webrtcLocalUDPAddress": address(c.webrtc_local_udp_address),
        "webrtcAdditionalHosts": c.webrtc_additional_hosts,
        "webrtcICEServers2": c.webrtc_ice_servers2.iter().map(|s| json!({
            "url": s.url, "username": s.username, "password": s.password,
        })).collect::<Vec<_>>(),
        "webrtcHandshakeTimeout": duration(c.webrtc_handshake_timeout),
        "webrtcAllowOrigins": c.webrtc_allow_origins,
        "webrtcSRTPProfiles": c.webrtc_srtp_profiles.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "webrtcMaxSessions": c.webrtc_max_sessions,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The whole configuration, paths in order.
pub fn full(c: &Config) -> Map<String, Value> {
    let mut m = global(c);
    m.insert(
        "pathDefaults".into(),
        Value::Object(path_conf(&c.path_defaults)),
    );
    let mut paths = Map::new();
    for (name, p) in &c.paths {
        paths.insert(name.clone(), Value::Object(path_conf(p)));
    }
    m.insert("paths".into(), Value::Object(paths));
    m
}

/// Loads a configuration from its JSON form with the file loader's checks.
pub fn load(m: Map<String, Value>) -> Result<Config, ConfigError> {
    Config::from_yaml_str(&Value::Object(m).to_string())
}

/// `auth*` keys: the API neither shows nor takes them. Credentials stay out of API answers,
/// and a control-API user cannot open the server up (or lock everyone out) with one write.
pub fn is_auth_key(key: &str) -> bool {
    key.starts_with("auth")
}

/// Loads `m`, a document built from what the API shows plus a change, as the configuration
/// that replaces `current`. `m` has no `auth*` keys, so `current`'s are carried over: loading
/// it alone would fall back to the open defaults and erase every credential.
pub fn load_over(current: &Config, m: Map<String, Value>) -> Result<Config, ConfigError> {
    let loaded = load(m)?;
    Ok(Config {
        auth_method: current.auth_method,
        auth_internal_users: current.auth_internal_users.clone(),
        auth_http_address: current.auth_http_address.clone(),
        auth_http_exclude: current.auth_http_exclude.clone(),
        auth_jwt_jwks: current.auth_jwt_jwks.clone(),
        auth_jwt_claim_key: current.auth_jwt_claim_key.clone(),
        auth_jwt_exclude: current.auth_jwt_exclude.clone(),
        ..loaded
    })
}

/// Global keys that need new listeners: refused at run time rather than half-applied.
pub const RESTART_KEYS: [&str; 14] = [
    "api",
    "apiAddress",
    "metrics",
    "metricsAddress",
    "pprof",
    "pprofAddress",
    "rtsp",
    "rtspTransports",
    "rtspAddress",
    "rtpAddress",
    "rtcpAddress",
    "webrtc",
    "webrtcAddress",
    "webrtcLocalUDPAddress",
];

/// RFC 3339 in UTC (MediaMTX's `readyTime`, `created`), without a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_json() {
        let c = Config::default();
        let back = load(full(&c)).expect("loads");
        assert_eq!(back, c);
    }

    #[test]
    fn durations_addresses_and_dates() {
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::from_secs(10)), "10s");
        assert_eq!(address("0.0.0.0:8554".parse().expect("addr")), ":8554");
        assert_eq!(
            address("127.0.0.1:9997".parse().expect("addr")),
            "127.0.0.1:9997"
        );
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn a_bad_patch_names_the_key() {
        let mut m = full(&Config::default());
        m.insert("readTimeout".into(), json!(12));
        let e = load(m).expect_err("a number is not a duration").to_string();
        assert!(e.contains("readTimeout"), "{e}");
    }
}
