//! Limits: body sizes, path names, maxReaders, webrtcMaxSessions, the handshake timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hubcast::config::{PathConf, RtspTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHROMIUM_WHEP: &str = include_str!("data/chromium-whep-offer.sdp");
const CHROMIUM_WHIP: &str = include_str!("data/chromium-whip-offer.sdp");

/// Sends a raw HTTP request (no client-side URL normalization) and returns the status.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sizes_and_path_names() {
    let server = start(test_config()).await;
    let http = server.addrs.webrtc_http.expect("http");
    // An 8 MB offer: refused from its Content-Length, before the body is read (a client
    // that sends it anyway gets the 413 and a closed connection).
    let req = format!(
        "POST /cam/whep HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        8 << 20
    );
    assert_eq!(raw_http(http, &req).await, 413, "an 8 MB offer");
    for path in [
        "/../x/whep",
        "/%2e%2e/x/whep",
        "/a/%2e%2e/whep",
        "/a//b/whep",
    ] {
        let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nv=0");
        assert_eq!(raw_http(http, &req).await, 400, "{path}");
    }
    server.shutdown();

    // A list of origins: only those get CORS headers.
    let config = hubcast::Config {
        webrtc_allow_origins: vec!["https://ok.example".into()],
        ..test_config()
    };
    let server = start(config).await;
    for (origin, allowed) in [
        ("https://ok.example", true),
        ("https://evil.example", false),
    ] {
        let r = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, whep_url(&server, "cam"))
            .header("Origin", origin)
            .send()
            .await
            .expect("OPTIONS");
        let acao = r
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            acao.as_deref() == Some(origin),
            allowed,
            "{origin}: {acao:?}"
        );
    }
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_readers_max_sessions_and_handshake_timeout() {
    let _heavy = HEAVY.lock().await;
    let mut config = test_config();
    config.paths.insert(
        0,
        (
            "cam".into(),
            PathConf {
                max_readers: 10,
                ..Default::default()
            },
        ),
    );
    config.webrtc_handshake_timeout = Duration::from_secs(2);
    let server = start(config).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;

    let viewers = connect_viewers(&whep_url(&server, "cam"), 10).await;
    let (s, headers, body) = post_sdp(&whep_url(&server, "cam"), CHROMIUM_WHEP).await;
    assert_eq!(s, 503, "the 11th reader");
    assert!(
        headers.get("retry-after").is_some(),
        "503 without Retry-After"
    );
    assert!(body.contains("maxReaders"), "{body}");
    // RTSP readers count against the same limit.
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let mut c = RawPublisher::connect(rtsp).await;
    let url = format!("rtsp://{rtsp}/cam");
    let (s, _) = c
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
            "",
        )
        .await;
    assert_eq!(s, 200);
    let (s, resp) = c.request("PLAY", &url, &[], "").await;
    assert_eq!(s, 503, "{resp}");
    assert!(resp.contains("Retry-After"), "{resp}");
    // The ten admitted viewers never noticed the refusals.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for v in &viewers {
        v.snapshot(|r| {
            assert_eq!(r.seq_gaps, 0, "an admitted viewer saw gaps");
            assert!(r.aus.len() > 20, "an admitted viewer stalled");
        });
        v.close().await;
    }
    assert!(wait_until(Duration::from_secs(5), || server.webrtc_sessions() == 0).await);
    ff.stop().await;

    // A peer that never does ICE is freed after webrtcHandshakeTimeout.
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let (s, _, body) = post_sdp(&whep_url(&server, "cam"), CHROMIUM_WHEP).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(server.webrtc_sessions(), 1);
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || server.webrtc_sessions() == 0).await,
        "a silent session outlived the handshake timeout"
    );
    eprintln!("silent session freed after {:?}", t.elapsed());
    ff.stop().await;
    server.shutdown();

    // webrtcMaxSessions.
    let config = hubcast::Config {
        webrtc_max_sessions: 2,
        ..test_config()
    };
    let server = start(config).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    for _ in 0..2 {
        let (s, _, body) = post_sdp(&whep_url(&server, "cam"), CHROMIUM_WHEP).await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, headers, _) = post_sdp(&whep_url(&server, "cam"), CHROMIUM_WHEP).await;
    assert_eq!(s, 503);
    assert!(headers.get("retry-after").is_some());
    ff.stop().await;
    server.shutdown();
}

/// POSTs that never do ICE hold a session slot until the handshake timeout: one address
/// may hold only a few at once, another address is still served, and an established viewer
/// from the same address does not count and keeps playing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_stuck_in_their_handshake_are_bounded_per_address() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let healthy = connect_viewers(&whep_url(&server, "cam"), 1).await;
    let url = whep_url(&server, "cam");
    let max = hubcast::servers::webrtc::MAX_PENDING_PER_IP;
    let mut statuses = Vec::new();
    for _ in 0..max + 4 {
        statuses.push(post_sdp(&url, CHROMIUM_WHEP).await.0);
    }
    assert!(statuses[..max].iter().all(|&s| s == 201), "{statuses:?}");
    assert!(statuses[max..].iter().all(|&s| s == 503), "{statuses:?}");
    let (_, _, body) = post_sdp(&url, CHROMIUM_WHEP).await;
    assert!(body.contains("handshake"), "{body}");
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("ip")))
        .build()
        .expect("client");
    let r = other
        .post(&url)
        .header("Content-Type", "application/sdp")
        .body(CHROMIUM_WHEP)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 201, "another address is served");
    let before = healthy[0].snapshot(|r| r.aus.len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    healthy[0].snapshot(|r| {
        assert!(r.aus.len() > before + 30, "the established viewer stalled");
        assert_eq!(r.seq_gaps, 0);
    });
    healthy[0].close().await;
    ff.stop().await;
    server.shutdown();
}

/// With `overridePublisher: no` (our default), a WHIP POST that never finishes its handshake
/// does not hold the path: the real publisher that comes next takes it and plays. Once that
/// one is established, a later POST is refused and the stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_claim_without_a_handshake_does_not_hold_the_path() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let http = server.addrs.webrtc_http.expect("webrtc on");
    let url = format!("http://{http}/cam/whip");
    let (status, _, body) = post_sdp(&url, CHROMIUM_WHIP).await;
    assert_eq!(status, 201, "{body}");
    let publisher = WhipPublisher::connect(&url, 30)
        .await
        .expect("the real publisher takes the path from the pending claim");
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let viewers = connect_viewers(&whep_url(&server, "cam"), 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = viewers[0].snapshot(|r| r.aus.len());
    assert!(before > 20, "only {before} access units");
    let (status, _, body) = post_sdp(&url, CHROMIUM_WHIP).await;
    assert_eq!(status, 409, "an established publisher holds: {body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    viewers[0].snapshot(|r| {
        assert!(r.aus.len() > before + 30, "the stream stalled");
        assert!(r.closed_by_server.is_none());
    });
    viewers[0].close().await;
    publisher.stop().await;
    server.shutdown();
}

/// Offers that wait for an on-demand source still count toward the limits while they wait:
/// of 20 concurrent POSTs with `webrtcMaxSessions: 4`, 16 are refused at once (they all
/// used to pass, as no session existed yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_waiting_for_a_source_count_toward_the_limits() {
    let _heavy = HEAVY.lock().await;
    // A "camera" that accepts and never answers: the source stays starting.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("rtsp://{}/stream", mute.local_addr().expect("addr"));
    let mut config = pull_config("cam", &url, |p| {
        p.source_on_demand = true;
        p.source_on_demand_start_timeout = Duration::from_secs(3);
    });
    config.webrtc_max_sessions = 4;
    let server = start(config).await;
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = mute.accept().await {
            conns.push(c);
        }
    });
    let url = whep_url(&server, "cam");
    let posts: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post_sdp(&url, CHROMIUM_WHEP).await })
        })
        .collect();
    let mut at_limit = 0;
    let mut other = Vec::new();
    for p in posts {
        let (status, _, body) = p.await.expect("task");
        if status == 503 && body.contains("webrtcMaxSessions") {
            at_limit += 1;
        } else {
            other.push(status);
        }
    }
    eprintln!("20 concurrent offers, limit 4: {at_limit} refused at the limit, others {other:?}");
    assert_eq!(at_limit, 16, "others: {other:?}");
    held.abort();
    server.shutdown();
}
