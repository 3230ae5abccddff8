//! Prometheus text exposition at `/metrics` (on `metricsAddress`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::Api;
use crate::servers::webrtc::session::SessionKind;

pub fn router(api: Api) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(api): axum::extract::State<Api>| async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        render(&api),
                    )
                        .into_response()
                },
            ),
        )
        .with_state(api)
}

/// One metric family: HELP and TYPE once, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// Label values are quoted; backslash, quote and newline are escaped.
fn label(k: &str, v: &str) -> String {
    let v = v
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("{k}=\"{v}\"")
}

pub fn render(api: &Api) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let streams = api.paths.streams();
    let mut names: Vec<String> = super::path_names(api);
    names.sort();
    let per_path = |f: &dyn Fn(&crate::path::Hub) -> f64| -> Vec<(String, f64)> {
        names
            .iter()
            .map(|n| {
                let v = streams
                    .iter()
                    .find(|(s, _)| s == n)
                    .map_or(0.0, |(_, h)| f(h));
                (label("path", n), v)
            })
            .collect()
    };
    family(
        &mut out,
        "hubcast_path_ready",
        "gauge",
        "1 when the path has a live stream.",
        &per_path(&|_| 1.0),
    );
    family(
        &mut out,
        "hubcast_path_readers",
        "gauge",
        "Readers of the path.",
        &per_path(&|h| h.reader_count() as f64),
    );
    family(
        &mut out,
        "hubcast_path_bytes_received_total",
        "counter",
        "Payload bytes the path received from its source.",
        &per_path(&|h| h.stats.bytes_in.load(Relaxed) as f64),
    );
    family(
        &mut out,
        "hubcast_path_bytes_sent_total",
        "counter",
        "Payload bytes the path handed to its readers.",
        &per_path(&|h| h.stats.bytes_out.load(Relaxed) as f64),
    );
    family(
        &mut out,
        "hubcast_path_packets_received_total",
        "counter",
        "RTP packets the path received (after repacketization).",
        &per_path(&|h| h.stats.packets_in.load(Relaxed) as f64),
    );
    family(
        &mut out,
        "hubcast_path_packets_sent_total",
        "counter",
        "RTP packets the path handed to its readers.",
        &per_path(&|h| h.stats.packets_out.load(Relaxed) as f64),
    );
    family(
        &mut out,
        "hubcast_path_packets_dropped_total",
        "counter",
        "Packets dropped for readers too slow to take them.",
        &per_path(&|h| h.stats.dropped.load(Relaxed) as f64),
    );
    family(
        &mut out,
        "hubcast_path_packets_invalid_total",
        "counter",
        "Broken input packets the source sent and hubcast dropped.",
        &per_path(&|h| h.stats.invalid_in.load(Relaxed) as f64),
    );

    let mut sessions: BTreeMap<(String, String), f64> = BTreeMap::new();
    for p in ["webrtc", "rtsp"] {
        for s in ["publish", "read", "idle"] {
            sessions.insert((p.into(), s.into()), 0.0);
        }
    }
    let mut profiles: BTreeMap<String, f64> = BTreeMap::new();
    if let Some(w) = &api.webrtc {
        for s in w.sessions.all() {
            let state = match s.kind {
                SessionKind::Whip => "publish",
                SessionKind::Whep => "read",
            };
            *sessions.entry(("webrtc".into(), state.into())).or_default() += 1.0;
        }
        for s in w.sessions.all() {
            if let Some(p) = s.srtp_profile.get() {
                *profiles.entry(p.as_str().to_string()).or_default() += 1.0;
            }
        }
    }
    if let Some(r) = &api.rtsp {
        for c in r.conns() {
            let state = c.session().map_or("idle", |s| s.state);
            *sessions.entry(("rtsp".into(), state.into())).or_default() += 1.0;
        }
    }
    let session_samples: Vec<(String, f64)> = sessions
        .into_iter()
        .map(|((p, s), v)| {
            (
                format!("{},{}", label("protocol", &p), label("state", &s)),
                v,
            )
        })
        .collect();
    family(
        &mut out,
        "hubcast_sessions",
        "gauge",
        "Sessions by protocol and state.",
        &session_samples,
    );
    for name in [
        "AEAD_AES_128_GCM",
        "AEAD_AES_256_GCM",
        "AES_CM_128_HMAC_SHA1_80",
    ] {
        profiles.entry(name.to_string()).or_default();
    }
    let profile_samples: Vec<(String, f64)> = profiles
        .into_iter()
        .map(|(p, v)| (label("profile", &p), v))
        .collect();
    family(
        &mut out,
        "hubcast_webrtc_srtp_profile_sessions",
        "gauge",
        "WebRTC sessions by the SRTP profile negotiated.",
        &profile_samples,
    );
    let t = &api.paths.telemetry;
    family(
        &mut out,
        "hubcast_webrtc_handshake_failures_total",
        "counter",
        "WebRTC sessions whose ICE+DTLS did not complete.",
        &[(String::new(), t.handshake_failures.load(Relaxed) as f64)],
    );
    family(
        &mut out,
        "hubcast_session_panics_total",
        "counter",
        "Sessions ended by an internal error (a panic caught in the session; the server went on).",
        &[(String::new(), t.session_panics.load(Relaxed) as f64)],
    );
    family(
        &mut out,
        "hubcast_udp_errors_total",
        "counter",
        "Receive errors on the RTSP RTP/RTCP UDP sockets.",
        &[(String::new(), t.udp_errors.load(Relaxed) as f64)],
    );
    family(
        &mut out,
        "hubcast_runtime_lag_seconds",
        "gauge",
        "How late the runtime last woke a 100 ms timer.",
        &[(
            String::new(),
            t.runtime_lag_ms.load(Relaxed) as f64 / 1000.0,
        )],
    );
    let (rss, cpu) = process_usage();
    family(
        &mut out,
        "hubcast_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        &[(String::new(), rss as f64)],
    );
    family(
        &mut out,
        "hubcast_process_cpu_seconds_total",
        "counter",
        "CPU time the process used (user + system).",
        &[(String::new(), cpu)],
    );
    t.latencies.write_prometheus(&mut out);
    out
}

/// (RSS bytes, CPU seconds) from /proc; zeros where /proc is not there.
pub fn process_usage() -> (u64, f64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which may contain spaces, closed by ')'.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / clock_ticks())
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

/// /proc/self/stat counts in USER_HZ, which Linux fixes at 100 for user space.
fn clock_ticks() -> f64 {
    100.0
}
