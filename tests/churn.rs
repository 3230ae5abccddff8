//! Session churn: 300 WHEP joins and leaves (DELETE, kick, a peer that vanishes, a peer that
//! never does ICE) and 50 RTSP publish/unpublish cycles must leave nothing behind: no
//! session, no reader, no task. The server runs on its own runtime so its task count is its own.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hubcast::config::RtspTransport;

const CHROMIUM_WHEP: &str = include_str!("data/chromium-whep-offer.sdp");

#[test]
fn sessions_come_and_go_and_leave_nothing_behind() {
    let _heavy = HEAVY.blocking_lock();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let config = hubcast::Config {
        webrtc_handshake_timeout: Duration::from_secs(2),
        ..test_config()
    };
    let server = server_rt.block_on(start(config));
    let ff = client_rt.block_on(async {
        let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
        wait_stream(&server, "cam", Duration::from_secs(15)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        ff
    });
    let tasks = || server_rt.metrics().num_alive_tasks();
    let tasks_before = tasks();
    let rss_before = rss_kib();
    let api = format!("http://{}", server.addrs.api.expect("api"));
    let http = format!("http://{}", server.addrs.webrtc_http.expect("http"));
    let started = Instant::now();

    // A healthy viewer watches through all of it and must not notice.
    let healthy = client_rt.block_on(async {
        let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
            .await
            .expect("healthy viewer");
        assert!(v.wait_connected(Duration::from_secs(10)).await);
        v
    });
    let healthy_before = healthy.snapshot(|r| r.aus.len());
    client_rt.block_on(async {
        let mut vanished = Vec::new();
        for i in 0..300 {
            match i % 4 {
                // Leaves with DELETE.
                0 => {
                    let mut v =
                        Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
                            .await
                            .expect("POST");
                    assert!(v.wait_connected(Duration::from_secs(10)).await, "cycle {i}");
                    let (s, _) =
                        http_request("DELETE", &format!("{http}{}", v.location), None, "").await;
                    assert_eq!(s, 200, "cycle {i}");
                    v.close().await;
                }
                // Kicked through the API.
                1 => {
                    let mut v =
                        Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
                            .await
                            .expect("POST");
                    assert!(v.wait_connected(Duration::from_secs(10)).await, "cycle {i}");
                    let secret = v
                        .location
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let id = server
                        .webrtc
                        .as_ref()
                        .and_then(|w| w.sessions.get(&secret))
                        .map(|s| s.id.clone())
                        .expect("session");
                    let (s, _) = http_request(
                        "POST",
                        &format!("{api}/v3/webrtcsessions/kick/{id}"),
                        None,
                        "",
                    )
                    .await;
                    assert_eq!(s, 200, "cycle {i}");
                    v.close().await;
                }
                // Vanishes: no close_notify, no more ICE consent.
                2 => {
                    let mute = Arc::new(AtomicBool::new(false));
                    let opts = ViewerOptions {
                        mute: Some(Arc::clone(&mute)),
                        ..Default::default()
                    };
                    let mut v = Viewer::connect(&whep_url(&server, "cam"), opts)
                        .await
                        .expect("POST");
                    assert!(v.wait_connected(Duration::from_secs(10)).await, "cycle {i}");
                    mute.store(true, Ordering::Relaxed);
                    vanished.push(v);
                }
                // Never does ICE at all.
                _ => {
                    let (s, _, body) = post_sdp(&whep_url(&server, "cam"), CHROMIUM_WHEP).await;
                    assert_eq!(s, 201, "cycle {i}: {body}");
                }
            }
        }
        for i in 0..50 {
            let mut p = RawPublisher::connect(server.addrs.rtsp.expect("rtsp")).await;
            let url = rtsp_url(&server, &format!("churn{}", i % 5));
            p.start(&url, H264_SDP).await.expect("publish");
            for seq in 0..10u16 {
                p.send_interleaved(
                    0,
                    &rtp_packet(seq, u32::from(seq) * 3000, true, &[0x65, 1, 2, 3]),
                )
                .await;
            }
            if i % 2 == 0 {
                let _ = p.request("TEARDOWN", &url, &[], "").await;
            }
            drop(p);
        }
        let gone = wait_until(Duration::from_secs(30), || server.webrtc_sessions() == 1).await;
        assert!(gone, "{} WebRTC sessions left", server.webrtc_sessions());
        for v in &vanished {
            v.close().await;
        }
        healthy.snapshot(|r| {
            assert_eq!(r.seq_gaps, 0, "the healthy viewer saw gaps");
            assert!(
                r.closed_by_server.is_none(),
                "the healthy viewer was closed"
            );
            assert!(
                r.aus.len() > healthy_before + 60,
                "the healthy viewer stalled"
            );
        });
        healthy.close().await;
        assert!(wait_until(Duration::from_secs(5), || server.webrtc_sessions() == 0).await);
    });
    let readers = server
        .paths
        .stream("cam")
        .map(|h| h.reader_count())
        .unwrap_or(0);
    assert_eq!(readers, 0, "readers left on the path");
    let conns = || server.rtsp.as_ref().map_or(0, |r| r.conns().len());
    client_rt.block_on(wait_until(Duration::from_secs(5), || conns() == 1));
    assert_eq!(
        conns(),
        1,
        "only the ffmpeg publisher's RTSP connection may remain"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while tasks() > tasks_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        tasks(),
        tasks_before,
        "server tasks before and after the churn"
    );
    eprintln!(
        "churn: 300 WHEP + 50 RTSP cycles in {:?}; RSS of the test process {} KiB -> {} KiB ({:+} KiB); server tasks {tasks_before} -> {}",
        started.elapsed(),
        rss_before,
        rss_kib(),
        rss_kib() as i64 - rss_before as i64,
        tasks()
    );
    client_rt.block_on(ff.stop());
    server.shutdown();
}
