//! RTSP readers: ffprobe and ffmpeg read back pushed and WHIP-published paths over TCP and UDP.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use hubcast::config::RtspTransport;
use tokio::process::Command;

/// `codec,width,height` of the first video stream as ffprobe reads it.
async fn ffprobe(url: &str, transport: &str) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                transport,
                "-select_streams",
                "v:0",
            ])
            .args([
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
                url,
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe finished in time")
    .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Decodes 90 frames; returns ffmpeg's error output (empty when clean).
async fn decode_90(url: &str, transport: &str) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("ffmpeg")
            .args(["-v", "error", "-rtsp_transport", transport, "-i", url])
            .args(["-frames:v", "90", "-f", "null", "-"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg finished in time")
    .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

async fn assert_readable(url: &str) {
    for transport in ["tcp", "udp"] {
        assert_eq!(
            ffprobe(url, transport).await,
            "h264,1280,720",
            "ffprobe over {transport}"
        );
    }
    let errors = decode_90(url, "tcp").await;
    assert!(errors.is_empty(), "decode errors: {errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_readers_read_pushed_and_whip_paths() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    assert_readable(&rtsp_url(&server, "cam")).await;
    ff.stop().await;

    let whip = format!(
        "http://{}/live/whip",
        server.addrs.webrtc_http.expect("http")
    );
    let publisher = WhipPublisher::connect(&whip, 30).await.expect("WHIP");
    wait_stream(&server, "live", Duration::from_secs(15)).await;
    assert_readable(&rtsp_url(&server, "live")).await;
    publisher.stop().await;
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_reader_errors() {
    let server = start(test_config()).await;
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let mut c = RawPublisher::connect(rtsp).await;
    let (s, r) = c
        .request("DESCRIBE", &format!("rtsp://{rtsp}/nothing"), &[], "")
        .await;
    assert_eq!(s, 404, "{r}");
    let (s, r) = c
        .request(
            "SETUP",
            &format!("rtsp://{rtsp}/nothing/trackID=0"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
            "",
        )
        .await;
    assert_eq!(s, 404, "{r}");
    let (s, r) = c
        .request("PLAY", &format!("rtsp://{rtsp}/nothing"), &[], "")
        .await;
    assert_eq!(s, 455, "{r}");
    server.shutdown();
}
