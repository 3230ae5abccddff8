//! Results: the table, the JSON, the sweep's Markdown and its hand-written SVG chart.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles.
    pub fn of(values: &[f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = |p: f64| {
            let r = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[r.clamp(1, v.len()) - 1]
        };
        Percentiles {
            count: v.len(),
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: v[v.len() - 1],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub viewers_requested: usize,
    pub viewers_connected: usize,
    pub seconds: f64,
    pub source: SourceInfo,
    pub connect_failures: Vec<String>,
    /// Server CPU over the window, in % of one core.
    pub server_cpu_pct: f64,
    /// Server CPU with the stream running and no viewer (3 s before they join).
    pub server_cpu_idle_pct: f64,
    /// Server CPU seconds per viewer-second (all of it, ingest included).
    pub server_cpu_s_per_viewer_s: f64,
    /// Same, in % of one core per viewer.
    pub server_cpu_pct_per_viewer: f64,
    /// (window CPU - idle CPU) / N: the cost of one more viewer.
    pub server_cpu_pct_per_viewer_net: f64,
    pub server_threads: u64,
    pub server_rss_baseline_kib: u64,
    pub server_rss_kib: u64,
    pub server_rss_per_viewer_kib: f64,
    /// How "expected" is computed.
    pub expected_method: String,
    pub packets_expected_per_viewer: u64,
    pub packets_expected: u64,
    pub packets_received: u64,
    /// expected - received, over all viewers (hub drops and network loss alike).
    pub packets_lost: u64,
    pub loss_pct: f64,
    /// Sequence gaps over each viewer's whole session (network-level loss only: packets the
    /// hub drops for a slow reader never get a sequence number).
    pub seq_gaps: u64,
    pub seq_gaps_in_window: u64,
    pub reordered: u64,
    pub viewers_with_loss: usize,
    /// Viewers that got nothing in the last 2 s of the run.
    pub viewers_stalled: usize,
    pub received_mbit_s_per_viewer: f64,
    pub received_mbit_s_total: f64,
    pub rtcp_packets: u64,
    pub post_to_201_ms: Percentiles,
    pub post_to_dtls_ms: Percentiles,
    pub post_to_first_packet_ms: Percentiles,
    pub connect_wall_s: f64,
    pub connect_concurrency: usize,
    pub srtp_profiles: Vec<(String, usize)>,
    pub client_cpu_pct: f64,
    /// CPU used by everything else on the host during the window, in % of one core (other
    /// processes share the cores: high values make latency and loss less trustworthy).
    pub other_cpu_pct: f64,
    pub host_cores: usize,
    pub host_loadavg_1m: f64,
    pub udp_rcvbuf_errors: u64,
    pub udp_sndbuf_errors: u64,
    pub udp_in_errors: u64,
    pub publisher_late_frames: u64,
    /// WARN/ERROR lines logged up to the end of the window (connect, warm-up, window).
    pub server_log_problems: usize,
    /// ... and while the viewers left (DTLS close_notify) at the end.
    pub server_log_problems_teardown: usize,
    /// Distinct messages (numbers masked): (count, first example), for both phases.
    pub server_log_summary: Vec<(usize, String)>,
    pub server_log_summary_teardown: Vec<(usize, String)>,
    pub server_log: String,
    pub checks_failed: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceInfo {
    pub file: String,
    pub frames: usize,
    pub bitrate_mbit_s: f64,
    pub profile_level_id: String,
    pub sender_packets_per_s: f64,
    pub server_packets_per_s: f64,
}

pub fn print_table(r: &RunResult) {
    let row = |k: &str, v: String| println!("  {k:<38} {v}");
    println!();
    println!(
        "fanout: {} viewer(s) of one 720p30 H.264 stream ({:.2} Mbit/s), {:.0} s window",
        r.viewers_requested, r.source.bitrate_mbit_s, r.seconds
    );
    row(
        "viewers connected",
        format!("{}/{}", r.viewers_connected, r.viewers_requested),
    );
    row(
        "server CPU (window / idle)",
        format!(
            "{:.1} % / {:.1} % of one core ({} threads)",
            r.server_cpu_pct, r.server_cpu_idle_pct, r.server_threads
        ),
    );
    row(
        "server CPU per viewer",
        format!(
            "{:.3} % of a core ({:.5} CPU-s per viewer-s); net of idle {:.3} %",
            r.server_cpu_pct_per_viewer,
            r.server_cpu_s_per_viewer_s,
            r.server_cpu_pct_per_viewer_net
        ),
    );
    row(
        "server RSS (baseline -> window end)",
        format!(
            "{:.1} MiB -> {:.1} MiB, {:.0} KiB per viewer",
            r.server_rss_baseline_kib as f64 / 1024.0,
            r.server_rss_kib as f64 / 1024.0,
            r.server_rss_per_viewer_kib
        ),
    );
    row(
        "packets expected / received / lost",
        format!(
            "{} / {} / {} ({:.3} %), {} per viewer expected",
            r.packets_expected,
            r.packets_received,
            r.packets_lost,
            r.loss_pct,
            r.packets_expected_per_viewer
        ),
    );
    row(
        "sequence gaps (session / window)",
        format!(
            "{} / {} ({} viewers with loss, {} stalled, {} reordered)",
            r.seq_gaps, r.seq_gaps_in_window, r.viewers_with_loss, r.viewers_stalled, r.reordered
        ),
    );
    row(
        "received",
        format!(
            "{:.2} Mbit/s per viewer, {:.1} Mbit/s total",
            r.received_mbit_s_per_viewer, r.received_mbit_s_total
        ),
    );
    let p = |x: &Percentiles| {
        format!(
            "p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1} ms",
            x.p50, x.p95, x.p99, x.max
        )
    };
    row("WHEP POST -> 201", p(&r.post_to_201_ms));
    row("WHEP POST -> DTLS done", p(&r.post_to_dtls_ms));
    row("WHEP POST -> first packet", p(&r.post_to_first_packet_ms));
    row(
        "connect phase",
        format!(
            "{:.1} s for {} viewers, {} at a time",
            r.connect_wall_s, r.viewers_requested, r.connect_concurrency
        ),
    );
    row(
        "SRTP profile",
        r.srtp_profiles
            .iter()
            .map(|(p, n)| format!("{p} x{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row(
        "client CPU (this process)",
        format!("{:.1} % of one core", r.client_cpu_pct),
    );
    row(
        "other load on the host",
        format!(
            "{:.1} % of one core ({} cores, loadavg {:.2})",
            r.other_cpu_pct, r.host_cores, r.host_loadavg_1m
        ),
    );
    row(
        "UDP RcvbufErrors / SndbufErrors / InErrors",
        format!(
            "{} / {} / {} (delta, whole host)",
            r.udp_rcvbuf_errors, r.udp_sndbuf_errors, r.udp_in_errors
        ),
    );
    row(
        "publisher frames sent late",
        r.publisher_late_frames.to_string(),
    );
    row(
        "server log WARN/ERROR lines",
        format!(
            "{} until the window ended, {} while viewers left ({})",
            r.server_log_problems, r.server_log_problems_teardown, r.server_log
        ),
    );
    for (n, l) in r.server_log_summary.iter().take(8) {
        println!("      {n:>5} x {}", truncate(l, 150));
    }
    if !r.server_log_summary_teardown.is_empty() {
        println!("    while leaving:");
        for (n, l) in r.server_log_summary_teardown.iter().take(8) {
            println!("      {n:>5} x {}", truncate(l, 150));
        }
    }
    if !r.connect_failures.is_empty() {
        println!("  connect failures ({}):", r.connect_failures.len());
        for f in r.connect_failures.iter().take(10) {
            println!("      - {f}");
        }
    }
    if r.checks_failed.is_empty() {
        println!("  checks: OK");
    } else {
        for c in &r.checks_failed {
            println!("  CHECK FAILED: {c}");
        }
    }
}

pub fn markdown(runs: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| viewers | connected | server CPU % | CPU %/viewer | net CPU %/viewer | RSS MiB | RSS KiB/viewer | expected | received | lost | seq gaps | POST->201 p50/p95/p99 ms | POST->1st pkt p50/p95/p99 ms | client CPU % | other CPU % | RcvbufErrors |"
    );
    let _ = writeln!(
        s,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.3} | {:.3} | {:.1} | {:.0} | {} | {} | {} ({:.2} %) | {} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.1} | {:.0} | {} |",
            r.viewers_requested,
            r.viewers_connected,
            r.server_cpu_pct,
            r.server_cpu_pct_per_viewer,
            r.server_cpu_pct_per_viewer_net,
            r.server_rss_kib as f64 / 1024.0,
            r.server_rss_per_viewer_kib,
            r.packets_expected,
            r.packets_received,
            r.packets_lost,
            r.loss_pct,
            r.seq_gaps,
            r.post_to_201_ms.p50,
            r.post_to_201_ms.p95,
            r.post_to_201_ms.p99,
            r.post_to_first_packet_ms.p50,
            r.post_to_first_packet_ms.p95,
            r.post_to_first_packet_ms.p99,
            r.client_cpu_pct,
            r.other_cpu_pct,
            r.udp_rcvbuf_errors,
        );
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two stacked line charts sharing the x axis (viewers): CPU % of one core per viewer, and
/// RSS KiB per viewer. No plotting crate: plain SVG.
pub fn svg(runs: &[RunResult], title: &str) -> String {
    let (w, h) = (760.0, 560.0);
    let (left, right) = (80.0, 30.0);
    let panels = [
        (
            "server CPU per viewer (% of one core)",
            "#d62728",
            runs.iter()
                .map(|r| (r.viewers_requested as f64, r.server_cpu_pct_per_viewer))
                .collect::<Vec<_>>(),
            60.0,
        ),
        (
            "server RSS per viewer (KiB)",
            "#1f77b4",
            runs.iter()
                .map(|r| (r.viewers_requested as f64, r.server_rss_per_viewer_kib))
                .collect::<Vec<_>>(),
            310.0,
        ),
    ];
    let panel_h = 190.0;
    let xmax = nice_max(
        runs.iter()
            .map(|r| r.viewers_requested as f64)
            .fold(0.0, f64::max),
    );
    let plot_w = w - left - right;
    let x_of = |x: f64| left + x / xmax * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    for (label, color, pts, top) in &panels {
        let ymax = nice_max(pts.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1);
        let y_of = |y: f64| top + panel_h - (y / ymax) * panel_h;
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="{}" font-weight="bold" fill="{color}">{}</text>"#,
            top - 10.0,
            esc(label)
        );
        // Grid and y ticks.
        let decimals = (1.0 - (ymax / 5.0).log10().floor()).clamp(0.0, 4.0) as usize;
        for i in 0..=5 {
            let v = ymax * f64::from(i) / 5.0;
            let y = y_of(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.decimals$}</text>"##,
                left + plot_w,
                left - 6.0,
                y + 4.0,
            );
        }
        // X ticks at the measured N.
        for (x, _) in pts.iter() {
            let xp = x_of(*x);
            let _ = writeln!(
                s,
                r##"<line x1="{xp:.1}" y1="{:.1}" x2="{xp:.1}" y2="{:.1}" stroke="#999"/><text x="{xp:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                top + panel_h,
                top + panel_h + 5.0,
                top + panel_h + 18.0,
                x
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#333"/><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
            top + panel_h,
            top + panel_h,
            left + plot_w,
            top + panel_h
        );
        let poly: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            poly.join(" ")
        );
        for (x, y) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
                x_of(*x),
                y_of(*y),
                x_of(*x),
                y_of(*y) - 8.0,
                fmt_tick(*y)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">viewers (N)</text>"#,
            left + plot_w / 2.0,
            top + panel_h + 34.0
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
