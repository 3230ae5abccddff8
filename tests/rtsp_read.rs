//! RTSP readers: ffprobe and ffmpeg read back pushed and WHIP-published paths over TCP and UDP.

mod common;

use std::time::Duration;

use common::*;
use hubcast::config::RtspTransport;

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
