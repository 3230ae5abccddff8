//! WebRTC stacks no one here wrote, against the server on its defaults (the one UDP socket
//! bound to all addresses; only the ports are free ones): aiortc as WHEP viewer and WHIP
//! publisher, ffmpeg 9's WHIP muxer, node-datachannel (libdatachannel, OBS's stack) and
//! GStreamer's webrtcbin. Each checks decoded media.
//!
//! The clients that can be bound sit on 127.0.0.1 while the server's candidate is the
//! machine's interface address, so every reply must leave from the address the peer sent to
//! (RFC 8445 section 7.3): aiortc and libnice drop anything else.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use hubcast::config::{Config, RtspTransport};
use tokio::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Defaults, with free ports: WebRTC UDP on all addresses, as `cargo run --release` has it.
fn defaults() -> Config {
    Config {
        webrtc_local_udp_address: SocketAddr::from(([0, 0, 0, 0], 0)),
        ..test_config()
    }
}

fn venv_python() -> String {
    format!("{ROOT}/scripts/.venv/bin/python")
}

/// Runs a client to the end; its last stdout line is JSON. Fails with its output otherwise.
async fn run_json(mut cmd: Command, limit: Duration) -> serde_json::Value {
    let out = tokio::time::timeout(limit, cmd.stdin(Stdio::null()).kill_on_drop(true).output())
        .await
        .expect("client finished in time")
        .expect("client runs (scripts/install-test-deps.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON line from {cmd:?}:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert!(
        out.status.success() && v.get("error").is_none(),
        "{cmd:?} failed: {v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{v}");
    v
}

/// The server must not answer from 127.0.0.1 for these tests to mean anything.
fn assert_interface_candidate(server: &hubcast::Server, answer_probe: &str) {
    let cands = candidates(answer_probe);
    assert!(
        cands.iter().any(|(ip, _)| !ip.is_loopback()),
        "expected an interface candidate, got {cands:?}"
    );
    assert!(server.addrs.webrtc_udp.expect("udp").ip().is_unspecified());
}

async fn answer_for(server: &hubcast::Server, path: &str) -> String {
    let offer = std::fs::read_to_string(format!("{ROOT}/tests/data/chromium-whep-offer.sdp"))
        .expect("offer");
    let (status, headers, body) = post_sdp(&whep_url(server, path), &offer).await;
    assert_eq!(status, 201, "{body}");
    if let Some(loc) = headers.get("location").and_then(|v| v.to_str().ok()) {
        let url = format!("http://{}{loc}", server.addrs.webrtc_http.expect("http"));
        let _ = reqwest::Client::new().delete(url).send().await;
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_plays_whep_on_video_only_and_audio_video_paths() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    let av = Ffmpeg::push(&rtsp_url(&server, "av"), RtspTransport::Tcp, 30, true);
    let v = Ffmpeg::push(&rtsp_url(&server, "v"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "av", Duration::from_secs(15)).await;
    wait_stream(&server, "v", Duration::from_secs(15)).await;
    assert_interface_candidate(&server, &answer_for(&server, "av").await);

    for round in 0..3 {
        for (path, audio) in [("v", false), ("av", true)] {
            let mut cmd = Command::new(venv_python());
            cmd.arg(format!("{ROOT}/scripts/aiortc-whep.py"))
                .args(["--url", &whep_url(&server, path), "--seconds", "4"])
                .args(["--bind", "127.0.0.1"]);
            let r = run_json(cmd, Duration::from_secs(60)).await;
            let frames = r["videoFrames"].as_u64().unwrap_or(0);
            assert!(frames >= 30, "round {round} {path}: {r}");
            assert_eq!(
                (r["width"].as_u64(), r["height"].as_u64()),
                (Some(1280), Some(720))
            );
            if audio {
                assert!(r["audioFrames"].as_u64().unwrap_or(0) >= 50, "{r}");
                let hz = r["pitchHz"].as_f64().unwrap_or(0.0);
                assert!((hz - 440.0).abs() < 20.0, "the tone is 440 Hz: {r}");
            } else {
                assert_eq!(r["audioFrames"].as_u64(), Some(0), "{r}");
            }
        }
    }
    av.stop().await;
    v.stop().await;
    server.shutdown();
}

/// The path carries 640x360 H.264 and 48 kHz Opus that ffprobe finds and ffmpeg decodes
/// (90 frames) over RTSP.
async fn assert_path_decodes(server: &hubcast::Server, path: &str, who: &str) {
    let streams = probe_streams(server, path).await;
    assert!(streams.contains("h264,640,360"), "{who}: {streams}");
    assert!(streams.contains("opus,48000"), "{who}: {streams}");
    let errors = decode_90(&rtsp_url(server, path), "tcp").await;
    assert!(errors.is_empty(), "decoding {who}'s H.264: {errors}");
}

/// Every stream ffprobe finds on the path over RTSP, as `codec,width,height,rate` lines.
async fn probe_streams(server: &hubcast::Server, path: &str) -> String {
    let url = rtsp_url(server, path);
    let args = [
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        "-show_entries",
        "stream=codec_name,width,height,sample_rate",
        "-of",
        "csv=p=0",
        &url,
    ];
    let out = ffmpeg_tool("ffprobe", &args, Duration::from_secs(20)).await;
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_h264_and_opus_over_whip() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    let url = format!(
        "http://{}/pub/whip",
        server.addrs.webrtc_http.expect("http")
    );
    let mut cmd = Command::new(venv_python());
    cmd.arg(format!("{ROOT}/scripts/aiortc-whip.py")).args([
        "--url",
        &url,
        "--seconds",
        "12",
        "--bind",
        "127.0.0.1",
    ]);
    let client = tokio::spawn(run_json(cmd, Duration::from_secs(90)));
    wait_stream(&server, "pub", Duration::from_secs(30)).await;
    assert_path_decodes(&server, "pub", "aiortc").await;
    let r = client.await.expect("client task");
    assert_eq!(r["status"].as_u64(), Some(201), "{r}");
    assert!(r["videoPackets"].as_u64().unwrap_or(0) > 300, "{r}");
    server.shutdown();
}

/// ffmpeg 9's WHIP muxer (imageio-ffmpeg's binary) offers `a=setup:passive`: the server is
/// the DTLS client. Ten publishes in a row must all connect; each one's own timing line
/// says how long DTLS took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg9_whip_connects_ten_times_in_a_row() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    let ffmpeg9 = {
        let out = std::process::Command::new(venv_python())
            .args([
                "-c",
                "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
            ])
            .output()
            .expect("the test venv has imageio-ffmpeg");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut dtls_ms = Vec::new();
    for run in 0..10 {
        let path = format!("ff{run}");
        let url = format!(
            "http://{}/{path}/whip",
            server.addrs.webrtc_http.expect("http")
        );
        let child = Command::new(&ffmpeg9)
            .args(["-hide_banner", "-loglevel", "verbose", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(X264)
            .args(["-g", "30"])
            .args(["-c:a", "libopus", "-ar", "48000", "-ac", "2", "-t", "5"])
            .args(["-f", "whip", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg 9 runs");
        let started = Instant::now();
        wait_stream(&server, &path, Duration::from_secs(10)).await;
        if run == 0 {
            assert_path_decodes(&server, &path, "ffmpeg 9").await;
        }
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("ffmpeg 9 ends")
            .expect("ffmpeg 9 output");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run}: ffmpeg 9 failed:\n{log}");
        // "... elapsed=1009.51ms(init:2.89,offer:0.02,answer:1.36,udp:0.07,ice:5.14,dtls:999.87,...)"
        let dtls = log
            .split("dtls:")
            .nth(1)
            .and_then(|s| s.split([',', ')']).next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("run {run}: no DTLS timing in ffmpeg's log:\n{log}"));
        eprintln!(
            "run {run}: DTLS {dtls:.1} ms, whole run {:?}",
            started.elapsed()
        );
        dtls_ms.push(dtls);
    }
    let slowest = dtls_ms.iter().copied().fold(0.0, f64::max);
    eprintln!("ffmpeg 9 WHIP: 10/10 connected, DTLS ms {dtls_ms:?}, slowest {slowest:.1}");
    // The first ClientHello is always lost to ffmpeg (it reads it in its ICE loop); before
    // the resend timer was shortened every run took the crate's 1 s default.
    assert!(
        slowest < 900.0,
        "DTLS as client waited for the 1 s resend: {dtls_ms:?}"
    );
    server.shutdown();
}

/// A peer offering `a=setup:passive` gets the handshake done at once on loopback: the
/// server's ClientHello waits for ICE instead of being lost before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_offer_handshakes_well_under_a_second() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    let cam = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let opts = ViewerOptions {
            passive: true,
            ..Default::default()
        };
        let mut viewer = Viewer::connect(&whep_url(&server, "cam"), opts)
            .await
            .expect("WHEP POST");
        assert!(
            viewer.answer.contains("a=setup:active"),
            "{}",
            viewer.answer
        );
        assert!(viewer.wait_connected(Duration::from_secs(10)).await);
        slowest = slowest.max(viewer.posted_at.elapsed());
        assert!(
            wait_until(Duration::from_secs(10), || viewer
                .snapshot(|r| r.aus.len() > 5))
            .await,
            "frames arrive with the server as DTLS client"
        );
        viewer.close().await;
    }
    let server_side = server
        .paths
        .telemetry
        .latencies
        .summary(hubcast::stats::op::ICE_DTLS_CONNECT, None)
        .expect("handshakes recorded");
    eprintln!(
        "passive offers: slowest POST->connected {slowest:?}; server ICE+DTLS p50 {:.1} ms max {:.1} ms",
        server_side.p50_ms, server_side.max_ms
    );
    assert!(slowest < Duration::from_millis(900), "{slowest:?}");
    cam.stop().await;
    server.shutdown();
}

/// node-datachannel (libdatachannel, the stack OBS's WHIP output uses) publishes with
/// libdatachannel's own `a=setup:actpass` offer, forwarding H.264 and Opus RTP that ffmpeg
/// produced; the path decodes over RTSP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_datachannel_publishes_over_whip() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    for run in 0..3 {
        let path = format!("obs{run}");
        let url = format!(
            "http://{}/{path}/whip",
            server.addrs.webrtc_http.expect("http")
        );
        let mut cmd = Command::new("node");
        cmd.arg(format!("{ROOT}/scripts/ndc-whip.mjs")).args([
            "--url",
            &url,
            "--seconds",
            "10",
            "--bind",
            "127.0.0.1",
        ]);
        let client = tokio::spawn(run_json(cmd, Duration::from_secs(60)));
        wait_stream(&server, &path, Duration::from_secs(20)).await;
        assert_path_decodes(&server, &path, "libdatachannel").await;
        let r = client.await.expect("client task");
        assert_eq!(r["connected"].as_bool(), Some(true), "{r}");
        assert!(r["videoPackets"].as_u64().unwrap_or(0) > 300, "{r}");
        assert!(r["audioPackets"].as_u64().unwrap_or(0) > 100, "{r}");
    }
    server.shutdown();
}

/// GStreamer's webrtcbin as a WHEP viewer: max-bundle makes its audio section `m=audio 0`
/// with `a=bundle-only`, which must be answered, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_plays_whep() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    let av = Ffmpeg::push(&rtsp_url(&server, "av"), RtspTransport::Tcp, 30, true);
    let v = Ffmpeg::push(&rtsp_url(&server, "v"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "av", Duration::from_secs(15)).await;
    wait_stream(&server, "v", Duration::from_secs(15)).await;
    for (path, audio) in [("av", true), ("v", false), ("av", true)] {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(format!("{ROOT}/scripts/gst-whep.py")).args([
            "--url",
            &whep_url(&server, path),
            "--seconds",
            "5",
        ]);
        let r = run_json(cmd, Duration::from_secs(60)).await;
        assert!(r["videoFrames"].as_u64().unwrap_or(0) >= 60, "{path}: {r}");
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(1280), Some(720))
        );
        if audio {
            assert!(
                r["audioBuffers"].as_u64().unwrap_or(0) >= 50,
                "Opus over bundle-only: {r}"
            );
        }
    }
    av.stop().await;
    v.stop().await;
    server.shutdown();
}

/// H.265 to a WHEP viewer that offers it (GStreamer's webrtcbin with rtph265depay and
/// avdec_h265, offering Main profile as Safari does): a camera's H.265, pushed by ffmpeg
/// over RTSP, is cut to WebRTC size once and decodes at its size. A viewer offering
/// H.264 only gets 406 naming the stream's codec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_plays_h265_over_whep() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    // WebRTC readers get frames in decode order; without B-frames that is display order.
    let mut encode = X265.to_vec();
    encode[X265.len() - 1] = "log-level=error:keyint=30:bframes=0";
    let mut ff = push_video(&rtsp_url(&server, "hevc"), &encode);
    wait_stream(&server, "hevc", Duration::from_secs(15)).await;
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(format!("{ROOT}/scripts/gst-whep.py")).args([
        "--url",
        &whep_url(&server, "hevc"),
        "--seconds",
        "5",
        "--video-codec",
        "h265",
    ]);
    let r = run_json(cmd, Duration::from_secs(60)).await;
    assert!(r["videoFrames"].as_u64().unwrap_or(0) >= 60, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
    );

    let offer = include_str!("data/chromium-whep-offer.sdp");
    let (status, _, body) = post_sdp(&whep_url(&server, "hevc"), offer).await;
    assert_eq!(status, 406, "{body}");
    assert!(body.contains("H.265"), "{body}");
    let _ = ff.kill().await;
    server.shutdown();
}

/// H.265 from a WHIP publisher (GStreamer's webrtcbin with x265enc and rtph265pay, as
/// Safari and Chrome with a hardware encoder send it): the path carries H.265, RTSP readers
/// get it back at its size, and a WHEP viewer offering H.265 decodes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_publishes_h265_over_whip() {
    let _heavy = HEAVY.lock().await;
    let server = start(defaults()).await;
    let whip = format!(
        "http://{}/hevc/whip",
        server.addrs.webrtc_http.expect("webrtc on")
    );
    let mut publisher = Command::new("/usr/bin/python3");
    publisher.arg(format!("{ROOT}/scripts/gst-whep.py")).args([
        "--url",
        &whip,
        "--seconds",
        "14",
        "--video-codec",
        "h265",
        "--publish",
    ]);
    let readers = async {
        wait_stream(&server, "hevc", Duration::from_secs(20)).await;
        assert_eq!(
            ffprobe(&rtsp_url(&server, "hevc"), "tcp").await,
            "hevc,640,360"
        );
        let mut viewer = Command::new("/usr/bin/python3");
        viewer.arg(format!("{ROOT}/scripts/gst-whep.py")).args([
            "--url",
            &whep_url(&server, "hevc"),
            "--seconds",
            "4",
            "--video-codec",
            "h265",
        ]);
        run_json(viewer, Duration::from_secs(40)).await
    };
    let (published, viewed) = tokio::join!(run_json(publisher, Duration::from_secs(60)), readers);
    assert!(
        viewed["videoFrames"].as_u64().unwrap_or(0) >= 45,
        "{viewed}"
    );
    assert_eq!(
        (viewed["width"].as_u64(), viewed["height"].as_u64()),
        (Some(640), Some(360)),
        "{viewed}"
    );
    let ice = published["iceState"].as_str().unwrap_or("");
    assert!(matches!(ice, "connected" | "completed"), "{published}");
    server.shutdown();
}
