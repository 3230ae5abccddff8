//! `/debug/pprof/`: CPU and heap profiles in the Go `net/http/pprof` conventions, so that
//! `go tool pprof http://127.0.0.1:9999/debug/pprof/profile?seconds=5` and the Rust `pprof` CLI
//! work against a running hubcast. Served on its own address (config key `pprofAddress`,
//! default 127.0.0.1:9999) so it is never exposed next to the public WHEP/WHIP endpoints.
//!
//! - CPU: sampled with the `pprof` crate at 99 Hz while the request waits `seconds`.
//! - Heap: jemalloc's sampled heap profile through `jemalloc_pprof`. It needs the binary to
//!   export `malloc_conf` with `prof:true` (hubcast's `main.rs` does, with `prof_active:false`
//!   so that sampling costs nothing until it is activated). Activation happens on the first
//!   heap request, on `GET /debug/pprof/heap?activate=1`, or at startup with
//!   `HUBCAST_HEAP_PROFILE=1` (see [`activate_heap_profiling_if_requested`]); a heap profile
//!   only holds allocations made while profiling was active.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::pprof::protos::Message as _;
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Default and bounds of `?seconds=` for CPU captures.
const DEFAULT_SECONDS: u64 = 30;
const MAX_SECONDS: u64 = 300;

/// Samples per second: not a round number, so sampling does not beat with periodic work
/// (Go uses 100 Hz; 99 is the usual choice for the same reason in perf).
const FREQUENCY_HZ: i32 = 99;

/// Shared objects whose frames are skipped when a sample lands in them: unwinding through
/// them from a signal handler can deadlock, and vdso's unwind info is wrong on some distros.
const BLOCKLIST: [&str; 4] = ["libc", "libgcc", "pthread", "vdso"];

/// Frames of the profiler's own signal handler and unwinder that end up on top of every stack.
const PROFILER_FRAME_PREFIXES: [&str; 4] = ["pprof::", "<pprof::", "backtrace::", "<backtrace::"];

/// Environment variable that activates heap profiling at startup.
pub const HEAP_PROFILE_ENV: &str = "HUBCAST_HEAP_PROFILE";

/// The CPU profiler is a process-wide singleton (one SIGPROF handler), so captures are
/// serialised across every router instance.
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// Why a profiling request failed; each maps to an HTTP status with a plain-text reason.
#[derive(Debug, thiserror::Error)]
pub enum PprofError {
    #[error(
        "seconds={0}: not an integer; use an integer number of seconds from 1 to {MAX_SECONDS}"
    )]
    SecondsNotInteger(String),
    #[error("seconds={0}: out of range; use an integer number of seconds from 1 to {MAX_SECONDS}")]
    SecondsOutOfRange(u64),
    #[error("activate={0}: only activate=1 is supported")]
    BadActivate(String),
    #[error("bad query string: {0}")]
    Query(String),
    #[error("a CPU profile is already being captured and only one runs at a time; retry when it finishes")]
    Busy,
    #[error("CPU profiler: {0}")]
    Profiler(#[from] ::pprof::Error),
    #[error("heap profiling is not available: jemalloc was started without profiling. The binary must export `malloc_conf` with \"prof:true,prof_active:false,lg_prof_sample:19\" (hubcast's main.rs does; test binaries and embedders need their own), or run with MALLOC_CONF=prof:true,prof_active:false")]
    HeapUnavailable,
    #[error("cannot activate heap profiling: {0}")]
    HeapActivate(#[from] tikv_jemalloc_ctl::Error),
    #[error("heap profile dump failed: {0}")]
    HeapDump(String),
    #[error("profile rendering failed: {0}")]
    Render(String),
    #[error("profiling task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl PprofError {
    fn status(&self) -> StatusCode {
        match self {
            Self::SecondsNotInteger(_)
            | Self::SecondsOutOfRange(_)
            | Self::BadActivate(_)
            | Self::Query(_) => StatusCode::BAD_REQUEST,
            Self::Busy | Self::Profiler(::pprof::Error::Running) => StatusCode::CONFLICT,
            Self::HeapUnavailable => StatusCode::NOT_IMPLEMENTED,
            Self::Profiler(_)
            | Self::HeapActivate(_)
            | Self::HeapDump(_)
            | Self::Render(_)
            | Self::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for PprofError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            tracing::warn!(error = %self, "pprof request failed");
        }
        (status, format!("{self}\n")).into_response()
    }
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The `/debug/pprof/` routes; stateless (the profilers are process-wide singletons).
pub fn router() -> Router {
    Router::new()
        .route("/debug/pprof", get(index))
        .route("/debug/pprof/", get(index))
        .route("/debug/pprof/profile", get(cpu_profile))
        .route("/debug/pprof/flamegraph", get(flamegraph))
        .route("/debug/pprof/heap", get(heap))
        // Go serves the same sampled allocation profile under both names.
        .route("/debug/pprof/allocs", get(heap))
}

/// Activates jemalloc heap profiling at startup when `HUBCAST_HEAP_PROFILE=1`, so that the
/// first heap profile covers everything since startup rather than since the first request.
/// Logs (and otherwise ignores) the case where heap profiling is unavailable.
pub fn activate_heap_profiling_if_requested() {
    let requested = std::env::var(HEAP_PROFILE_ENV)
        .map(|v| matches!(v.trim(), "1" | "true" | "yes"))
        .unwrap_or(false);
    if !requested {
        return;
    }
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        tracing::warn!("{HEAP_PROFILE_ENV}=1 but {}", PprofError::HeapUnavailable);
        return;
    };
    // Called at startup, possibly outside any runtime: try_lock never blocks and nothing
    // else holds the lock yet.
    let Ok(mut ctl) = ctl.try_lock() else {
        tracing::warn!("{HEAP_PROFILE_ENV}=1 but the heap profiler is busy; not activated");
        return;
    };
    if ctl.activated() {
        return;
    }
    match ctl.activate() {
        Ok(()) => tracing::info!(
            "jemalloc heap profiling active ({HEAP_PROFILE_ENV}=1): /debug/pprof/heap"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot activate jemalloc heap profiling"),
    }
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn cpu_profile(params: Params) -> Result<Response, PprofError> {
    let seconds = seconds_param(&params_map(params)?)?;
    let body = capture(seconds, Render::Protobuf).await?;
    Ok(binary_response(body, "attachment; filename=\"profile\""))
}

async fn flamegraph(params: Params) -> Result<Response, PprofError> {
    let seconds = seconds_param(&params_map(params)?)?;
    let body = capture(seconds, Render::Flamegraph).await?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], body).into_response())
}

async fn heap(params: Params) -> Result<Response, PprofError> {
    let params = params_map(params)?;
    let activate_only = match params.get("activate").map(String::as_str) {
        None => false,
        Some("1" | "true") => true,
        Some(other) => return Err(PprofError::BadActivate(other.to_owned())),
    };
    let ctl = jemalloc_pprof::PROF_CTL
        .as_ref()
        .ok_or(PprofError::HeapUnavailable)?;
    let mut ctl = std::sync::Arc::clone(ctl).lock_owned().await;
    if !ctl.activated() {
        ctl.activate()?;
        tracing::info!("jemalloc heap profiling activated by a /debug/pprof/heap request");
    }
    if activate_only {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Dumping writes a temp file and symbolizes every sampled stack: keep it off the runtime.
    let body = tokio::task::spawn_blocking(move || ctl.dump_pprof())
        .await?
        .map_err(|e| PprofError::HeapDump(format!("{e:#}")))?;
    Ok(binary_response(body, "attachment; filename=\"heap\""))
}

fn params_map(params: Params) -> Result<HashMap<String, String>, PprofError> {
    params
        .map(|Query(m)| m)
        .map_err(|e| PprofError::Query(e.body_text()))
}

/// `?seconds=`: default 30, an integer from 1 to 300.
fn seconds_param(params: &HashMap<String, String>) -> Result<u64, PprofError> {
    let Some(raw) = params.get("seconds") else {
        return Ok(DEFAULT_SECONDS);
    };
    let seconds: u64 = raw
        .trim()
        .parse()
        .map_err(|_| PprofError::SecondsNotInteger(raw.clone()))?;
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(PprofError::SecondsOutOfRange(seconds));
    }
    Ok(seconds)
}

fn binary_response(body: Vec<u8>, disposition: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Clone, Copy)]
enum Render {
    Protobuf,
    Flamegraph,
}

/// Held for the whole capture; released on drop, including when the client goes away and
/// the handler future is dropped mid-sleep.
struct CaptureSlot;

impl CaptureSlot {
    fn acquire() -> Result<Self, PprofError> {
        CAPTURING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| CaptureSlot)
            .map_err(|_| PprofError::Busy)
    }
}

impl Drop for CaptureSlot {
    fn drop(&mut self) {
        CAPTURING.store(false, Ordering::Release);
    }
}

/// Samples the whole process for `seconds`, then renders the report.
async fn capture(seconds: u64, render: Render) -> Result<Vec<u8>, PprofError> {
    let slot = CaptureSlot::acquire()?;
    let guard = ::pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY_HZ)
        .blocklist(&BLOCKLIST)
        .build()?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Symbolization walks debug info and can take a second or more: not on a runtime worker.
    tokio::task::spawn_blocking(move || {
        let report = guard
            .report()
            .frames_post_processor(strip_profiler_frames)
            .build()?;
        // Stop sampling before rendering so the rendering does not show up in a later capture.
        drop(guard);
        let body = render_report(&report, render, seconds);
        drop(slot);
        body
    })
    .await?
}

fn render_report(
    report: &::pprof::Report,
    render: Render,
    seconds: u64,
) -> Result<Vec<u8>, PprofError> {
    match render {
        Render::Protobuf => Ok(report.pprof()?.encode_to_vec()),
        Render::Flamegraph => flamegraph_svg(report, seconds),
    }
}

fn flamegraph_svg(report: &::pprof::Report, seconds: u64) -> Result<Vec<u8>, PprofError> {
    if report.data.is_empty() {
        // inferno refuses to draw an empty graph; an idle process is a valid answer.
        return Ok(empty_svg(seconds).into_bytes());
    }
    let mut options = ::pprof::flamegraph::Options::default();
    options.title = format!("hubcast CPU, {seconds} s at {FREQUENCY_HZ} Hz");
    let mut svg = Vec::new();
    report
        .flamegraph_with_options(&mut svg, &mut options)
        .map_err(|e| PprofError::Render(e.to_string()))?;
    Ok(svg)
}

fn empty_svg(seconds: u64) -> String {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"60\">\
         <text x=\"10\" y=\"35\">no CPU samples in {seconds} s: the process was idle</text></svg>\n"
    )
}

/// Removes the profiler's own frames (signal handler, unwinder) from a sampled stack so that
/// they neither dominate `-top` nor sit at the root of every flamegraph tower.
fn strip_profiler_frames(frames: &mut ::pprof::Frames) {
    for frame in &mut frames.frames {
        frame.retain(|symbol| !is_profiler_symbol(&symbol.name()));
    }
    frames.frames.retain(|frame| !frame.is_empty());
}

fn is_profiler_symbol(name: &str) -> bool {
    PROFILER_FRAME_PREFIXES.iter().any(|p| name.starts_with(p))
}

const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>hubcast /debug/pprof/</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em}code,pre{background:#f4f4f4}td{padding:.2em .8em;vertical-align:top}</style>
</head><body>
<h1>hubcast /debug/pprof/</h1>
<p>Profiles in the pprof protobuf format, compatible with <code>go tool pprof</code> and the Rust <code>pprof</code> CLI.
Only one CPU capture (profile or flamegraph) runs at a time; a concurrent one gets 409.</p>
<table>
<tr><td><a href="profile?seconds=30">profile?seconds=N</a></td><td>CPU profile sampled at 99 Hz for N seconds (default 30, 1&ndash;300).</td></tr>
<tr><td><a href="flamegraph?seconds=10">flamegraph?seconds=N</a></td><td>The same CPU capture rendered as an SVG flamegraph.</td></tr>
<tr><td><a href="heap">heap</a></td><td>jemalloc sampled in-use heap profile (gzipped protobuf). Covers allocations made since heap profiling was activated.</td></tr>
<tr><td><a href="heap?activate=1">heap?activate=1</a></td><td>Only activates heap profiling (204). Call it at startup, or start hubcast with <code>HUBCAST_HEAP_PROFILE=1</code>.</td></tr>
<tr><td><a href="allocs">allocs</a></td><td>Alias of heap.</td></tr>
</table>
<h2>Examples</h2>
<pre>
go tool pprof -top http://127.0.0.1:9999/debug/pprof/profile?seconds=30
curl -o cpu.pb 'http://127.0.0.1:9999/debug/pprof/profile?seconds=30' &amp;&amp; go tool pprof -http=:8080 cpu.pb
curl -o flame.svg 'http://127.0.0.1:9999/debug/pprof/flamegraph?seconds=10'
curl -o heap.pb.gz http://127.0.0.1:9999/debug/pprof/heap &amp;&amp; go tool pprof -sample_index=inuse_space -top heap.pb.gz
</pre>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn seconds_defaults_and_bounds() {
        assert_eq!(seconds_param(&params(&[])).ok(), Some(30));
        assert_eq!(seconds_param(&params(&[("seconds", "1")])).ok(), Some(1));
        assert_eq!(
            seconds_param(&params(&[("seconds", "300")])).ok(),
            Some(300)
        );
        for bad in [
            "0",
            "301",
            "100000",
            "abc",
            "",
            "-1",
            "1.5",
            "99999999999999999999999",
        ] {
            let err = seconds_param(&params(&[("seconds", bad)])).expect_err(bad);
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert!(err.to_string().contains("seconds="), "{err}");
        }
    }

    #[test]
    fn profiler_frames_are_recognised() {
        assert!(is_profiler_symbol("pprof::profiler::perf_signal_handler"));
        assert!(is_profiler_symbol(
            "<pprof::backtrace::backtrace_rs::Trace as pprof::backtrace::Trace>::trace"
        ));
        assert!(is_profiler_symbol("backtrace::backtrace::libunwind::trace"));
        assert!(!is_profiler_symbol("hubcast::stream::hub::Hub::write"));
        assert!(!is_profiler_symbol("pprof_like::thing"));
    }

    #[test]
    fn busy_and_unavailable_statuses() {
        assert_eq!(PprofError::Busy.status(), StatusCode::CONFLICT);
        assert_eq!(
            PprofError::Profiler(::pprof::Error::Running).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            PprofError::HeapUnavailable.status(),
            StatusCode::NOT_IMPLEMENTED
        );
        assert!(PprofError::HeapUnavailable
            .to_string()
            .contains("malloc_conf"));
    }

    #[test]
    fn empty_flamegraph_is_svg() {
        let svg = empty_svg(5);
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    }
}
