//! Fan-out load harness: one 720p30 H.264 stream in over RTSP, N WHEP viewers out, measured
//! on the release server binary running as its own process.
//!
//! ```sh
//! cargo build --release --bin hubcast
//! cargo bench --bench fanout -- --viewers 5 --seconds 5             # smoke: exits 1 on loss
//! cargo bench --bench fanout -- --viewers 100 --seconds 20
//! cargo bench --bench fanout -- --sweep 10,50,100,200 --seconds 20  # + SVG and Markdown
//! ```
//!
//! Options: `--viewers N` (10), `--seconds S` (10), `--sweep a,b,c`, `--server-bin PATH`
//! (target/release/hubcast), `--bitrate 2M`, `--concurrency C` (viewers connecting at once,
//! 10), `--warmup S` (3).
//!
//! * The server gets a temp config: every listener on 127.0.0.1 with a free port,
//!   `writeQueueSize: 1024`, `logLevel: warn`; its output goes to target/bench/fanout-N-server.log.
//! * The camera is a file ffmpeg encodes once (target/bench/fanout-src-720p30-2M.h264, 10 s
//!   of testsrc2, x264 baseline, GOP 30), replayed here as RTP over RTSP/TCP at 30 fps.
//! * Viewers are lightweight (see fanout/viewer.rs): real ICE and DTLS, no SRTP decryption,
//!   RTP counted from the clear header.
//! * Expected packets: the sender runs hubcast's own `Reframer` over what it pushes, so it
//!   knows exactly how many packets the server emits per access unit; the window opens and
//!   closes on access-unit boundaries and viewers count the packets whose RTP timestamp falls
//!   inside it (the server keeps the publisher's timestamps). expected - received = every
//!   packet lost, hub drops included; sequence gaps only see loss after the hub (a packet the
//!   hub drops for a slow reader never gets a sequence number).
//! * Server CPU is utime+stime of its process over the window; RSS per viewer is VmRSS at the
//!   end of the window minus VmRSS with the stream running and no viewer, over N.

#[path = "fanout/publisher.rs"]
mod publisher;
#[path = "fanout/report.rs"]
mod report;
#[path = "fanout/server.rs"]
mod server;
#[path = "fanout/viewer.rs"]
mod viewer;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use publisher::{Publisher, Source};
use report::{Percentiles, RunResult, SourceInfo};
use server::ServerProc;
use viewer::{Shared, Viewer};

struct Args {
    viewers: usize,
    seconds: f64,
    sweep: Option<Vec<usize>>,
    server_bin: PathBuf,
    bitrate: String,
    concurrency: usize,
    warmup: f64,
    /// The server's `webrtcLocalUDPAddress` host: 127.0.0.1, or 0.0.0.0 as the built-in
    /// default has it (replies then carry their source address per message).
    udp_bind: String,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench fanout -- [--viewers N] [--seconds S] [--sweep 10,50,100] \
     [--server-bin PATH] [--bitrate 2M] [--concurrency C] [--warmup S] [--udp-bind 0.0.0.0]"
}

fn parse_args() -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        viewers: 10,
        seconds: 10.0,
        sweep: None,
        server_bin: root.join("target/release/hubcast"),
        bitrate: "2M".into(),
        concurrency: 10,
        warmup: 3.0,
        udp_bind: "127.0.0.1".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n{}", usage()))
        };
        match key.as_str() {
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            "--viewers" | "-n" => {
                a.viewers = value("--viewers")?
                    .parse()
                    .map_err(|e| format!("--viewers: {e}"))?
            }
            "--seconds" | "-s" => {
                a.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--sweep" => {
                let list = value("--sweep")?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("--sweep: {e}"))?;
                if list.is_empty() {
                    return Err("--sweep needs at least one N".into());
                }
                a.sweep = Some(list);
            }
            "--server-bin" => a.server_bin = PathBuf::from(value("--server-bin")?),
            "--bitrate" => a.bitrate = value("--bitrate")?,
            "--udp-bind" => a.udp_bind = value("--udp-bind")?,
            "--concurrency" => {
                a.concurrency = value("--concurrency")?
                    .parse::<usize>()
                    .map_err(|e| format!("--concurrency: {e}"))?
                    .max(1)
            }
            "--warmup" => {
                a.warmup = value("--warmup")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if a.seconds <= 0.0 {
        return Err("--seconds must be > 0".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if !args.server_bin.is_file() {
        eprintln!(
            "server binary {} not found. Build it first:\n\n    cargo build --release --bin hubcast\n\n\
             (or pass --server-bin PATH)",
            args.server_bin.display()
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        tokio::select! {
            code = run_all(&args) => code,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: stopping the server");
                130
            }
        }
    });
    // Viewer tasks may still be parked; do not wait for them.
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

async fn run_all(args: &Args) -> i32 {
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("cannot create {}: {e}", out_dir.display());
        return 2;
    }
    let source = match publisher::prepare(&out_dir, &args.bitrate) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    eprintln!(
        "source: {} ({} frames, {:.2} Mbit/s, profile-level-id {})",
        source.path.display(),
        source.aus.len(),
        source.bitrate_bps() / 1e6,
        source.profile_level_id()
    );
    let ns = args.sweep.clone().unwrap_or_else(|| vec![args.viewers]);
    let mut results = Vec::new();
    let mut setup_failed = false;
    for (i, &n) in ns.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        eprintln!("== {n} viewer(s) ==");
        match run_one(args, n, &source, &out_dir).await {
            Ok(r) => {
                report::print_table(&r);
                let path = out_dir.join(format!("fanout-{n}.json"));
                match serde_json::to_string_pretty(&r) {
                    Ok(j) => {
                        if let Err(e) = std::fs::write(&path, j) {
                            eprintln!("cannot write {}: {e}", path.display());
                        } else {
                            println!("  JSON: {}", path.display());
                        }
                    }
                    Err(e) => eprintln!("JSON: {e}"),
                }
                results.push(r);
            }
            Err(e) => {
                eprintln!("run with {n} viewers failed: {e}");
                setup_failed = true;
            }
        }
    }
    if args.sweep.is_some() && !results.is_empty() {
        let md = report::markdown(&results);
        println!("\n{md}");
        let svg_path = out_dir.join("fanout-sweep.svg");
        let title = format!(
            "hubcast fan-out: one 720p30 H.264 stream ({:.1} Mbit/s), {:.0} s per N",
            source.bitrate_bps() / 1e6,
            args.seconds
        );
        let _ = std::fs::write(&svg_path, report::svg(&results, &title));
        let _ = std::fs::write(out_dir.join("fanout-sweep.md"), &md);
        if let Ok(j) = serde_json::to_string_pretty(&results) {
            let _ = std::fs::write(out_dir.join("fanout-sweep.json"), j);
        }
        println!(
            "sweep: {} / {} / {}",
            svg_path.display(),
            out_dir.join("fanout-sweep.md").display(),
            out_dir.join("fanout-sweep.json").display()
        );
        return if setup_failed { 1 } else { 0 };
    }
    if setup_failed {
        return 1;
    }
    if results.iter().any(|r| !r.checks_failed.is_empty()) {
        1
    } else {
        0
    }
}

fn self_ticks() -> u64 {
    server::cpu_ticks("self").map_or(0, |t| t.0)
}

async fn run_one(
    args: &Args,
    n: usize,
    source: &Arc<Source>,
    out_dir: &std::path::Path,
) -> Result<RunResult, String> {
    let tck = server::clk_tck();
    let mut srv = ServerProc::start(&args.server_bin, out_dir, &n.to_string(), &args.udp_bind)?;
    let pid = srv.pid.to_string();
    let publisher = Publisher::start(Arc::clone(source), srv.rtsp_addr(), "bench");
    let recording =
        tokio::task::block_in_place(|| publisher.wait_recording(Duration::from_secs(10)));
    recording.map_err(|e| format!("{e}\nserver log:\n{}", srv.log_tail(20)))?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Baseline: stream running, no viewer.
    let t_idle = Instant::now();
    let c_idle0 = server::cpu_ticks(&pid).ok_or("server gone")?.0;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c_idle1 = server::cpu_ticks(&pid).ok_or("server gone")?.0;
    let idle_wall = t_idle.elapsed().as_secs_f64();
    let rss_base = server::rss_kib(&pid).ok_or("server gone")?;
    let server_cpu_idle_pct = (c_idle1 - c_idle0) as f64 / tck / idle_wall * 100.0;

    // Connect N viewers, `concurrency` at a time.
    let shared = Arc::new(Shared::new(
        Arc::clone(&publisher.window),
        srv.whep_url("bench"),
        srv.webrtc_udp(),
    )?);
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let t_connect = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let shared = Arc::clone(&shared);
        let sem = Arc::clone(&sem);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = tokio::time::timeout(Duration::from_secs(60), viewer::connect(shared)).await;
            (i, r)
        });
    }
    let mut viewers: Vec<Viewer> = Vec::with_capacity(n);
    let mut failures = Vec::new();
    let mut post_ms = Vec::new();
    while let Some(j) = set.join_next().await {
        match j {
            Ok((_, Ok(Ok(v)))) => {
                post_ms.push(v.post_ms);
                viewers.push(v);
            }
            Ok((i, Ok(Err(e)))) => {
                if let Some(p) = e.post_ms {
                    post_ms.push(p);
                }
                failures.push(format!("viewer {i}: [{}] {}", e.stage, e.reason));
            }
            Ok((i, Err(_))) => failures.push(format!("viewer {i}: connect timed out (60 s)")),
            Err(e) => failures.push(format!("viewer task: {e}")),
        }
    }
    let connect_wall_s = t_connect.elapsed().as_secs_f64();
    eprintln!(
        "{}/{} viewers connected in {:.1} s",
        viewers.len(),
        n,
        connect_wall_s
    );

    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    if !srv.alive() {
        return Err(format!("the server died; log:\n{}", srv.log_tail(30)));
    }

    // The window.
    let gaps0: u64 = viewers
        .iter()
        .map(|v| v.counters.gaps.load(Ordering::Relaxed))
        .sum();
    let snmp0 = server::udp_snmp();
    let late0 = publisher.stats.late_frames.load(Ordering::Relaxed);
    let pub_pkts0 = publisher.stats.rtp_packets.load(Ordering::Relaxed);
    let srv_pkts0 = publisher.stats.server_packets.load(Ordering::Relaxed);
    publisher.open_window().await?;
    let t0 = Instant::now();
    let (c0, _) = server::cpu_ticks(&pid).ok_or("server gone")?;
    let self0 = self_ticks();
    let host0 = server::host_cpu();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let (c1, threads) = server::cpu_ticks(&pid).ok_or("server gone")?;
    let self1 = self_ticks();
    let host1 = server::host_cpu();
    let rss_end = server::rss_kib(&pid).ok_or("server gone")?;
    publisher.close_window().await?;
    let wall = t0.elapsed().as_secs_f64();
    let snmp1 = server::udp_snmp();
    let pub_pkts1 = publisher.stats.rtp_packets.load(Ordering::Relaxed);
    let srv_pkts1 = publisher.stats.server_packets.load(Ordering::Relaxed);
    let late1 = publisher.stats.late_frames.load(Ordering::Relaxed);
    let gaps1: u64 = viewers
        .iter()
        .map(|v| v.counters.gaps.load(Ordering::Relaxed))
        .sum();
    let now_us = shared.base.elapsed().as_micros() as u64;
    let stalled = viewers
        .iter()
        .filter(|v| {
            now_us.saturating_sub(v.counters.last_packet_us.load(Ordering::Relaxed)) > 2_000_000
        })
        .count();
    // Let the last frames of the window arrive (bounded).
    let expected_per_viewer = publisher.expected_per_viewer().unwrap_or(0);
    let drain_deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let short = viewers
            .iter()
            .filter(|v| v.counters.window_packets.load(Ordering::Relaxed) < expected_per_viewer)
            .count();
        if short == 0 || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server_alive = srv.alive();

    // Tally.
    let connected = viewers.len();
    let received: u64 = viewers
        .iter()
        .map(|v| v.counters.window_packets.load(Ordering::Relaxed))
        .sum();
    let received_bytes: u64 = viewers
        .iter()
        .map(|v| v.counters.window_bytes.load(Ordering::Relaxed))
        .sum();
    let expected = expected_per_viewer * connected as u64;
    let lost = expected.saturating_sub(received);
    let seq_gaps: u64 = viewers
        .iter()
        .map(|v| v.counters.gaps.load(Ordering::Relaxed))
        .sum();
    let viewers_with_loss = viewers
        .iter()
        .filter(|v| {
            v.counters.gaps.load(Ordering::Relaxed) > 0
                || v.counters.window_packets.load(Ordering::Relaxed) < expected_per_viewer
        })
        .count();
    let no_packets = viewers
        .iter()
        .filter(|v| v.counters.window_packets.load(Ordering::Relaxed) == 0)
        .count();
    let mut profiles: Vec<(String, usize)> = Vec::new();
    for v in &viewers {
        match profiles.iter_mut().find(|(p, _)| *p == v.srtp_profile) {
            Some((_, c)) => *c += 1,
            None => profiles.push((v.srtp_profile.clone(), 1)),
        }
    }
    let cpu_s = (c1 - c0) as f64 / tck;
    let server_cpu_pct = cpu_s / wall * 100.0;
    let per_viewer_s = cpu_s / (connected.max(1) as f64 * wall);
    let problems = srv.problems();
    let client_cpu_pct = (self1 - self0) as f64 / tck / wall * 100.0;
    // /proc/stat counts in USER_HZ, like /proc/PID/stat.
    let host_busy_pct = (host1.0 - host0.0) as f64 / tck / wall * 100.0;
    let server_pps = (srv_pkts1 - srv_pkts0) as f64 / wall;

    let mut checks = Vec::new();
    if connected < n {
        checks.push(format!(
            "{} of {n} viewers could not connect",
            n - connected
        ));
    }
    if expected_per_viewer == 0 {
        checks.push("the publisher sent nothing during the window".into());
    }
    if no_packets > 0 {
        checks.push(format!(
            "{no_packets} viewers received no packet in the window"
        ));
    }
    if seq_gaps > 0 {
        checks.push(format!("{seq_gaps} packets lost (sequence gaps)"));
    }
    if lost > 0 {
        checks.push(format!(
            "{lost} of {expected} expected packets did not arrive ({viewers_with_loss} viewers short)"
        ));
    }
    if stalled > 0 {
        checks.push(format!(
            "{stalled} viewers stalled (nothing in the last 2 s)"
        ));
    }
    if !server_alive {
        checks.push("the server exited during the run".into());
    }
    if let Some(e) = publisher.error() {
        checks.push(format!("publisher: {e}"));
    }

    let mut result = RunResult {
        viewers_requested: n,
        viewers_connected: connected,
        seconds: wall,
        source: SourceInfo {
            file: source.path.display().to_string(),
            frames: source.aus.len(),
            bitrate_mbit_s: source.bitrate_bps() / 1e6,
            profile_level_id: source.profile_level_id(),
            sender_packets_per_s: (pub_pkts1 - pub_pkts0) as f64 / wall,
            server_packets_per_s: server_pps,
        },
        connect_failures: failures,
        server_cpu_pct,
        server_cpu_idle_pct,
        server_cpu_s_per_viewer_s: per_viewer_s,
        server_cpu_pct_per_viewer: per_viewer_s * 100.0,
        server_cpu_pct_per_viewer_net: (server_cpu_pct - server_cpu_idle_pct)
            / connected.max(1) as f64,
        server_threads: threads,
        server_rss_baseline_kib: rss_base,
        server_rss_kib: rss_end,
        server_rss_per_viewer_kib: (rss_end as f64 - rss_base as f64) / connected.max(1) as f64,
        expected_method: "per viewer: packets hubcast's Reframer (run in the sender over the \
                          pushed RTP) emits for the access units inside the window; viewers \
                          count packets by RTP timestamp"
            .into(),
        packets_expected_per_viewer: expected_per_viewer,
        packets_expected: expected,
        packets_received: received,
        packets_lost: lost,
        loss_pct: if expected > 0 {
            lost as f64 * 100.0 / expected as f64
        } else {
            0.0
        },
        seq_gaps,
        seq_gaps_in_window: gaps1 - gaps0,
        reordered: viewers
            .iter()
            .map(|v| v.counters.reordered.load(Ordering::Relaxed))
            .sum(),
        viewers_with_loss,
        viewers_stalled: stalled,
        received_mbit_s_per_viewer: received_bytes as f64 * 8.0
            / wall
            / 1e6
            / connected.max(1) as f64,
        received_mbit_s_total: received_bytes as f64 * 8.0 / wall / 1e6,
        rtcp_packets: viewers
            .iter()
            .map(|v| v.counters.rtcp.load(Ordering::Relaxed))
            .sum(),
        post_to_201_ms: Percentiles::of(&post_ms),
        post_to_dtls_ms: Percentiles::of(&viewers.iter().map(|v| v.dtls_ms).collect::<Vec<_>>()),
        post_to_first_packet_ms: Percentiles::of(
            &viewers
                .iter()
                .map(|v| v.first_packet_ms)
                .collect::<Vec<_>>(),
        ),
        connect_wall_s,
        connect_concurrency: args.concurrency,
        srtp_profiles: profiles,
        client_cpu_pct,
        other_cpu_pct: (host_busy_pct - server_cpu_pct - client_cpu_pct).max(0.0),
        host_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        host_loadavg_1m: server::loadavg(),
        udp_rcvbuf_errors: server::snmp_get(&snmp1, "RcvbufErrors")
            .saturating_sub(server::snmp_get(&snmp0, "RcvbufErrors")),
        udp_sndbuf_errors: server::snmp_get(&snmp1, "SndbufErrors")
            .saturating_sub(server::snmp_get(&snmp0, "SndbufErrors")),
        udp_in_errors: server::snmp_get(&snmp1, "InErrors")
            .saturating_sub(server::snmp_get(&snmp0, "InErrors")),
        publisher_late_frames: late1 - late0,
        server_log_problems: problems.len(),
        server_log_problems_teardown: 0,
        server_log_summary: server::summarize(&problems),
        server_log_summary_teardown: Vec::new(),
        server_log: srv.log_path.display().to_string(),
        checks_failed: checks,
    };

    // Leave: close_notify from every viewer (bounded), then the guards stop the rest.
    let mut closing = tokio::task::JoinSet::new();
    for v in viewers {
        closing.spawn(v.close());
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while closing.join_next().await.is_some() {}
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = srv.problems();
    let teardown = all.get(problems.len()..).unwrap_or_default().to_vec();
    result.server_log_problems_teardown = teardown.len();
    result.server_log_summary_teardown = server::summarize(&teardown);
    tokio::task::block_in_place(move || drop(publisher));
    drop(srv);
    Ok(result)
}
