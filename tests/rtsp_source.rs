//! Pulled RTSP sources with retina against a real camera (gst-rtsp-server): TCP and UDP,
//! reconnects, on demand, origin -> edge, and broken cameras.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hubcast::config::{RtspTransport, SourceTransport};
use hubcast::sources::SourceState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const IDR: u8 = 5;
const SPS: u8 = 7;

/// ffmpeg's error lines without object addresses and numbers (frame counts differ with the
/// moment of joining), as a set.
fn error_kinds(stderr: &str) -> std::collections::BTreeSet<String> {
    stderr
        .lines()
        .map(|l| {
            l.split_once("] ")
                .map_or(l, |(_, rest)| rest)
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect::<String>()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

fn assert_idr_first_no_gaps(v: &Viewer, min_aus: usize) {
    v.snapshot(|r| {
        assert!(r.aus.len() >= min_aus, "only {} access units", r.aus.len());
        let first = &r.aus[0].nal_types;
        assert!(
            first.contains(&SPS) && first.contains(&IDR),
            "first AU {first:?}"
        );
        assert_eq!(r.seq_gaps, 0, "sequence gaps");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_camera_over_tcp_and_udp_plays_over_whep_and_rtsp() {
    let _heavy = HEAVY.lock().await;
    let cam = Camera::start(free_port(), &[]).await;
    for transport in [SourceTransport::Tcp, SourceTransport::Udp] {
        let server = start(pull_config("cam", &cam.url(), |p| {
            p.rtsp_transport = transport
        }))
        .await;
        wait_stream(&server, "cam", Duration::from_secs(15)).await;
        let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
            .await
            .expect("WHEP");
        assert!(v.wait_connected(Duration::from_secs(10)).await);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_idr_first_no_gaps(&v, 60);
        assert!(
            v.snapshot(|r| r.audio_packets) > 0,
            "no Opus over {transport:?}"
        );
        for t in ["tcp", "udp"] {
            assert_eq!(
                ffprobe(&rtsp_url(&server, "cam"), t).await,
                "h264,1280,720",
                "{transport:?} source, {t} reader"
            );
        }
        // GStreamer's stream itself makes ffmpeg warn about repeated DTS at each keyframe;
        // hubcast must add nothing to what ffmpeg says reading the camera directly.
        let via_hubcast = error_kinds(&decode_90(&rtsp_url(&server, "cam"), "tcp").await);
        let direct = error_kinds(&decode_90(&cam.url(), "tcp").await);
        assert!(
            via_hubcast.is_subset(&direct),
            "decode errors hubcast added: {:?}",
            via_hubcast.difference(&direct)
        );
        v.close().await;
        server.shutdown();
    }
    cam.kill().await;
}

/// A Hikvision- or Dahua-style camera sending H.265 and AAC (gst-rtsp-server with x265enc,
/// rtph265pay, voaacenc and rtpmp4gpay), pulled over TCP and UDP: RTSP readers get both
/// back, and decoding them shows no error that reading the camera directly does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_and_aac_camera_is_pulled_and_read_back() {
    let _heavy = HEAVY.lock().await;
    let cam = Camera::start(free_port(), &["--h265-aac"]).await;
    for transport in [SourceTransport::Tcp, SourceTransport::Udp] {
        let server = start(pull_config("cam", &cam.url(), |p| {
            p.rtsp_transport = transport
        }))
        .await;
        wait_stream(&server, "cam", Duration::from_secs(20)).await;
        let url = rtsp_url(&server, "cam");
        assert_eq!(ffprobe(&url, "tcp").await, "hevc,640,360", "{transport:?}");
        assert_eq!(
            ffprobe_stream(&url, "tcp", "a:0", "stream=codec_name,sample_rate,channels").await,
            "aac,48000,2",
            "{transport:?}"
        );
        let via_hubcast = error_kinds(&decode_90(&url, "tcp").await);
        let direct = error_kinds(&decode_90(&cam.url(), "tcp").await);
        assert!(
            via_hubcast.is_subset(&direct),
            "decode errors hubcast added: {:?}",
            via_hubcast.difference(&direct)
        );
        server.shutdown();
    }
    cam.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_restart_resumes_the_same_viewer() {
    let _heavy = HEAVY.lock().await;
    let port = free_port();
    let cam = Camera::start(port, &[]).await;
    let server = start(pull_config("cam", &cam.url(), |_| {})).await;
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("WHEP");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_idr_first_no_gaps(&v, 30);

    cam.kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = v.snapshot(|r| r.aus.len());
    let cam = Camera::start(port, &[]).await;
    let back = Instant::now();
    let resumed = wait_until(Duration::from_secs(5), || {
        v.snapshot(|r| r.aus.len() >= before + 10)
    })
    .await;
    assert!(resumed, "no video within 5 s of the camera's return");
    eprintln!(
        "video resumed {:?} after the camera came back",
        back.elapsed()
    );
    v.snapshot(|r| {
        let after: Vec<&Au> = r.aus[before..].iter().collect();
        assert!(
            after[0].nal_types.contains(&IDR),
            "resumed mid-GOP: {:?}",
            after[0].nal_types
        );
    });
    assert_eq!(server.webrtc_sessions(), 1, "the viewer needed no new POST");
    v.close().await;
    server.shutdown();
    cam.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_source_connects_for_readers_only() {
    let _heavy = HEAVY.lock().await;
    let cam = Camera::start(free_port(), &[]).await;
    let close_after = Duration::from_secs(2);
    let server = start(pull_config("cam", &cam.url(), |p| {
        p.source_on_demand = true;
        p.source_on_demand_close_after = close_after;
    }))
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cam.count("CLIENT"),
        0,
        "the camera saw a client before any reader"
    );

    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("on-demand WHEP");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_idr_first_no_gaps(&v, 30);
    assert_eq!(cam.count("CLIENT"), 1);

    v.close().await;
    let left = Instant::now();
    let released = wait_until(close_after + Duration::from_secs(2), || {
        cam.count("CLOSED") >= 1
    })
    .await;
    assert!(
        released,
        "the camera still had its client {:?} after the last reader left",
        left.elapsed()
    );
    eprintln!(
        "camera released {:?} after the last reader left",
        left.elapsed()
    );
    server.shutdown();
    cam.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_to_edge_serves_many_viewers_with_one_origin_reader() {
    let _heavy = HEAVY.lock().await;
    let origin = start(test_config()).await;
    let ff = Ffmpeg::push(&rtsp_url(&origin, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&origin, "cam", Duration::from_secs(15)).await;
    // Default rtspTransport (automatic: UDP first) between two hubcasts.
    let edge = start(pull_config("cam", &rtsp_url(&origin, "cam"), |p| {
        p.source_on_demand = true;
        // A loaded CI machine may need a retry of the first attempt.
        p.source_on_demand_start_timeout = Duration::from_secs(20);
    }))
    .await;

    let mut viewers = Vec::new();
    for _ in 0..4 {
        let mut v = Viewer::connect(&whep_url(&edge, "cam"), ViewerOptions::default())
            .await
            .expect("edge WHEP");
        assert!(v.wait_connected(Duration::from_secs(10)).await);
        viewers.push(v);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for v in &viewers {
        assert_idr_first_no_gaps(v, 40);
    }
    let origin_hub = origin.paths.stream("cam").expect("origin stream");
    assert_eq!(
        origin_hub.reader_count(),
        1,
        "the origin must see only the edge"
    );
    for v in &viewers {
        v.close().await;
    }
    ff.stop().await;
    edge.shutdown();
    origin.shutdown();
}

/// A fake camera that answers like an RTSP server, then sends a little RTP and garbage.
async fn garbage_camera(
    listener: TcpListener,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut playing = false;
            while !playing {
                let Ok(n) = s.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let req = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let cseq = req
                        .lines()
                        .find_map(|l| l.strip_prefix("CSeq: "))
                        .unwrap_or("1")
                        .to_string();
                    let method = req.split_whitespace().next().unwrap_or("").to_string();
                    let resp = match method.as_str() {
                        "DESCRIBE" => {
                            let sdp = H264_SDP;
                            format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://127.0.0.1/cam/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len())
                        }
                        "SETUP" => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 1234;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
                        "PLAY" => {
                            playing = true;
                            format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 1234\r\n\r\n")
                        }
                        _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: DESCRIBE, SETUP, PLAY\r\n\r\n"),
                    };
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
            // A few valid packets, then bytes that are not RTSP framing at all.
            for seq in 0..5u16 {
                let pkt = rtp_packet(seq, 1000, true, &[0x65, 1, 2, 3]);
                let mut f = vec![b'$', 0];
                f.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
                f.extend_from_slice(&pkt);
                let _ = s.write_all(&f).await;
            }
            let _ = s.write_all(&[0xde; 3000]).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_cameras_fail_clearly_and_hurt_nobody() {
    let _heavy = HEAVY.lock().await;
    // Unreachable, no H.264, garbage mid-stream: three paths of one server.
    let dead = format!("rtsp://127.0.0.1:{}/cam", free_port());
    let vp8 = Camera::start(free_port(), &["--no-h264"]).await;
    let garbage = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let garbage_url = format!("rtsp://{}/cam", garbage.local_addr().expect("addr"));
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(garbage_camera(garbage, std::sync::Arc::clone(&connections)));

    let mut config = pull_config("dead", &dead, |_| {});
    config.paths.insert(
        0,
        (
            "vp8".into(),
            hubcast::config::PathConf {
                source: vp8.url(),
                ..Default::default()
            },
        ),
    );
    config.paths.insert(
        0,
        (
            "junk".into(),
            hubcast::config::PathConf {
                source: garbage_url,
                ..Default::default()
            },
        ),
    );
    let server = start(config).await;

    // A healthy pushed stream on the same server keeps playing throughout.
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("WHEP");
    assert!(v.wait_connected(Duration::from_secs(10)).await);

    let failed = |name: &str| {
        let ctl = server.paths.source(name).expect("source");
        let st = ctl.state.borrow().clone();
        match st {
            SourceState::Failed(r) => Some(r),
            _ => None,
        }
    };
    assert!(
        wait_until(Duration::from_secs(8), || failed("dead").is_some()).await,
        "dead source not reported"
    );
    let reason = failed("dead").unwrap_or_default();
    assert!(
        reason.to_lowercase().contains("refused") || reason.to_lowercase().contains("connect"),
        "{reason}"
    );
    // A VP8-only camera (GStreamer's RTSP server) was refused before VP8 was carried; now
    // it is pulled like any other.
    wait_stream(&server, "vp8", Duration::from_secs(15)).await;
    let hub = server.paths.stream("vp8").expect("vp8 stream");
    assert_eq!(hub.tracks()[0].codec, hubcast::codec::Codec::Vp8);
    let (s, _, body) = post_sdp(
        &whep_url(&server, "dead"),
        include_str!("data/chromium-whep-offer.sdp"),
    )
    .await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("not ready"), "{body}");
    // The garbage camera is reconnected to, again and again (with backoff).
    assert!(
        wait_until(Duration::from_secs(8), || connections
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2)
        .await,
        "no reconnect after garbage"
    );

    let before = v.snapshot(|r| r.aus.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    v.snapshot(|r| {
        assert_eq!(r.seq_gaps, 0);
        assert!(r.aus.len() >= before + 20, "the healthy viewer stalled");
    });
    v.close().await;
    ff.stop().await;
    server.shutdown();
    vp8.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_closed_once_the_reconnect_grace_is_over() {
    let _heavy = HEAVY.lock().await;
    let cam = Camera::start(free_port(), &[]).await;
    let grace = Duration::from_secs(2);
    let server = start(pull_config("cam", &cam.url(), |p| {
        p.source_reconnect_grace = grace
    }))
    .await;
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("WHEP");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    cam.kill().await;
    let lost = Instant::now();
    // Still attached inside the grace period...
    tokio::time::sleep(grace / 2).await;
    assert_eq!(
        server.webrtc_sessions(),
        1,
        "closed before the grace period ended"
    );
    // ...and closed soon after it.
    let closed = wait_until(Duration::from_secs(4), || {
        v.snapshot(|r| r.closed_by_server.is_some())
    })
    .await;
    assert!(closed, "the viewer was not closed after the grace period");
    eprintln!(
        "viewer closed {:?} after the camera died (grace {grace:?})",
        lost.elapsed()
    );
    server.shutdown();
}

/// A config write that leaves a pulled path's source keys alone (here `maxReaders`) does not
/// restart the source: the camera sees no new client and the viewer never stops. A write to
/// a source key (`rtspTransport`) does restart it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_change_restarts_a_source_only_for_source_keys() {
    let _heavy = HEAVY.lock().await;
    let cam = Camera::start(free_port(), &[]).await;
    let server = start(pull_config("cam", &cam.url(), |p| {
        p.rtsp_transport = SourceTransport::Tcp
    }))
    .await;
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("WHEP");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let clients = cam.count("CLIENT");
    let api = format!("http://{}", server.addrs.api.expect("api"));
    let patch = |body: &'static str| {
        let url = format!("{api}/v3/config/paths/patch/cam");
        async move {
            let r = reqwest::Client::new()
                .patch(url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("PATCH");
            assert_eq!(r.status().as_u16(), 200, "{body}");
        }
    };
    patch(r#"{"maxReaders":5}"#).await;
    let before = v.snapshot(|r| r.aus.len());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cam.count("CLIENT"),
        clients,
        "maxReaders restarted the source"
    );
    assert!(v.snapshot(|r| r.ended.is_none() && r.aus.len() > before + 30));
    assert_eq!(v.snapshot(|r| r.seq_gaps), 0);

    patch(r#"{"rtspTransport":"udp"}"#).await;
    assert!(
        wait_until(Duration::from_secs(10), || cam.count("CLIENT") > clients).await,
        "a source key change restarts the source"
    );
    v.close().await;
    cam.kill().await;
    server.shutdown();
}
