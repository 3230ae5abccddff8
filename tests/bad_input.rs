//! Broken input of every kind gets its clear error (or is dropped and counted) while an
//! existing viewer keeps playing without a gap.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hubcast::config::RtspTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHROMIUM_WHEP: &str = include_str!("data/chromium-whep-offer.sdp");

const VP8_ONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 1B:3A:F7:44:5E:D1:ED:A8:E0:70:FC:AD:2F:F1:4A:13:D8:D6:07:CE:42:41:7D:A8:36:1F:1E:68:C2:1B:27:A8\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n";

async fn rtsp_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before we finish writing a huge request.
    let _ = s.write_all(raw).await;
    let resp = read_response(&mut s).await;
    let mut rest = [0u8; 1];
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(3), s.read(&mut rest)).await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    (resp, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_the_viewer_keeps_playing() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("POST");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    let url = whep_url(&server, "cam");

    // WHEP: wrong content type, non-SDP, truncated SDP, VP8 only, no stream.
    let (s, _, body) = post_raw(&url, "text/plain", b"hello".to_vec()).await;
    assert_eq!(s, 415, "{body}");
    let (s, _, body) = post_sdp(&url, "this is not SDP").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("SDP"), "{body}");
    for cut in [60, CHROMIUM_WHEP.find("a=ice-ufrag").expect("ufrag")] {
        let (s, _, body) = post_sdp(&url, &CHROMIUM_WHEP[..cut]).await;
        assert_eq!(s, 400, "truncated at {cut}: {body}");
    }
    let (s, _, body) = post_sdp(&url, VP8_ONLY).await;
    assert_eq!(s, 406, "{body}");
    assert!(
        body.contains("H.264") && body.contains("the offer has: VP8/90000"),
        "the path's codec and the offered ones: {body}"
    );
    let (s, _, body) = post_sdp(&whep_url(&server, "nothing"), CHROMIUM_WHEP).await;
    assert_eq!(s, 404, "{body}");
    let http = server.addrs.webrtc_http.expect("http");
    let r = reqwest::Client::new()
        .delete(format!(
            "http://{http}/cam/whep/0123456789abcdef0123456789abcdef"
        ))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status().as_u16(), 404);
    let r = reqwest::Client::new()
        .patch(format!("http://{http}{}", v.location))
        .header("Content-Type", "application/trickle-ice-sdpfrag")
        .body("not a fragment")
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status().as_u16(), 400);

    // WebRTC transport: junk at the shared UDP port, and a peer whose certificate is not
    // the one its offer names.
    let udp = server.addrs.webrtc_udp.expect("webrtc udp");
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut stun_bad_integrity = vec![0u8, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42];
    stun_bad_integrity.extend_from_slice(&[7; 12]);
    stun_bad_integrity.extend_from_slice(&[0, 6, 0, 4, b'a', b'b', b':', b'c']);
    for d in [
        &b""[..],
        &[0u8; 1][..],
        &stun_bad_integrity[..],
        &[22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1][..],
        &[0x80u8, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9][..],
        &[0x80u8, 200, 0, 6][..],
        &[0xffu8; 1400][..],
    ] {
        junk.send_to(d, udp).await.expect("send junk");
    }
    let failures = || {
        server
            .paths
            .telemetry
            .handshake_failures
            .load(Ordering::Relaxed)
    };
    let failed_before = failures();
    let forged = Viewer::connect(
        &url,
        ViewerOptions {
            wrong_fingerprint: true,
            ..Default::default()
        },
    )
    .await
    .expect("the POST itself is fine");
    assert!(
        wait_until(Duration::from_secs(10), || failures() > failed_before).await,
        "a certificate that does not match the offer's fingerprint was accepted"
    );
    assert!(
        wait_until(Duration::from_secs(5), || server.webrtc_sessions() == 1).await,
        "the forged session was not ended ({} sessions)",
        server.webrtc_sessions()
    );
    assert_eq!(
        forged.snapshot(|r| r.aus.len()),
        0,
        "media reached a peer with the wrong certificate"
    );
    forged.close().await;

    // RTSP: garbage request line, a 1 MB header, ANNOUNCE without H.264, a second publisher.
    let (resp, closed) = rtsp_exchange(rtsp, b"\x16\x03\x01 garbage\r\n\r\n").await;
    assert!(resp.starts_with("RTSP/1.0 400"), "{resp}");
    assert!(closed, "connection left open after garbage");
    let mut huge = b"OPTIONS rtsp://x/cam RTSP/1.0\r\nCSeq: 1\r\nX-Pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let (resp, closed) = rtsp_exchange(rtsp, &huge).await;
    assert!(resp.starts_with("RTSP/1.0 400"), "{resp:.200}");
    assert!(closed, "connection left open after a 1 MB header");

    let mut p = RawPublisher::connect(rtsp).await;
    let aac = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=control:trackID=0\r\n";
    let err = p
        .start(&format!("rtsp://{rtsp}/aac"), aac)
        .await
        .expect_err("refused");
    // AAC without the fmtp it needs: the refusal says what is missing.
    assert!(
        err.starts_with("RTSP/1.0 406")
            && err.contains("MPEG4-GENERIC")
            && err.contains("sizelength"),
        "{err}"
    );

    // 130 media sections: their default interleaved channels (2 per media) would overflow
    // a byte at SETUP; the ANNOUNCE is refused and says why.
    let mut many = String::from("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n");
    for i in 0..130 {
        many.push_str(&format!(
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID={i}\r\n"
        ));
    }
    let mut p = RawPublisher::connect(rtsp).await;
    let url = format!("rtsp://{rtsp}/many");
    let (status, resp) = p
        .request(
            "ANNOUNCE",
            &url,
            &[("Content-Type", "application/sdp")],
            &many,
        )
        .await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp.contains("130 media sections"), "{resp}");
    let (status, resp) = p
        .request(
            "SETUP",
            &format!("{url}/trackID=129"),
            &[("Transport", "RTP/AVP/TCP;unicast;mode=record")],
            "",
        )
        .await;
    assert!(status >= 400, "SETUP of a refused ANNOUNCE: {resp}");

    let mut p = RawPublisher::connect(rtsp).await;
    let err = p
        .start(&format!("rtsp://{rtsp}/cam"), H264_SDP)
        .await
        .expect_err("busy");
    assert!(
        err.starts_with("RTSP/1.0 400") && err.contains("already has a publisher"),
        "{err}"
    );

    // Broken RTP from a publisher on another path: dropped and counted.
    let mut p = RawPublisher::connect(rtsp).await;
    p.start(&format!("rtsp://{rtsp}/junk"), H264_SDP)
        .await
        .expect("publish junk");
    let junk = server.paths.stream("junk").expect("junk stream");
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..200 {
        let len = 1 + (x % 1400) as usize;
        let mut b = vec![0u8; len];
        for byte in b.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *byte = x as u8;
        }
        p.send_interleaved((x % 4) as u8, &b).await;
    }
    let before = junk.stats.invalid_in.load(Ordering::Relaxed);
    // FU-A middle fragment with no start, then a STAP-A whose NAL length runs past the end.
    p.send_interleaved(0, &rtp_packet(1000, 3000, false, &[0x7c, 0x05, 1, 2, 3]))
        .await;
    p.send_interleaved(
        0,
        &rtp_packet(1001, 3000, true, &[0x78, 0x00, 0x40, 0x67, 1]),
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(2), || junk
            .stats
            .invalid_in
            .load(Ordering::Relaxed)
            >= before + 2)
        .await,
        "broken H.264 not counted"
    );
    let (s, _) = p
        .request("GET_PARAMETER", &format!("rtsp://{rtsp}/junk"), &[], "")
        .await;
    assert_eq!(s, 200, "the junk publisher's session survived its own junk");

    // The viewer never noticed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = v.snapshot(|r| r.aus.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    v.snapshot(|r| {
        assert_eq!(r.seq_gaps, 0, "viewer saw gaps");
        assert!(
            r.aus.len() >= before + 20,
            "viewer stalled: {} -> {}",
            before,
            r.aus.len()
        );
    });
    v.close().await;
    ff.stop().await;
    server.shutdown();
}

/// A request dribbled in a byte at a time is cut off once readTimeout has passed since it
/// began (each byte used to restart the timer); a publisher that sends keep-alives but no
/// media loses its path after readTimeout; one address cannot hold more than its share of
/// RTSP connections, and others still get in. A WHEP viewer of another path plays through
/// all of it without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_slow_requests_and_connection_floods_are_bounded() {
    let _heavy = HEAVY.lock().await;
    let mut config = test_config();
    config.read_timeout = Duration::from_secs(2);
    let server = start(config).await;
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let ff = Ffmpeg::push(&rtsp_url(&server, "live"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "live", Duration::from_secs(15)).await;
    let healthy = connect_viewers(&whep_url(&server, "live"), 1).await;
    let healthy_before = healthy[0].snapshot(|r| r.aus.len());

    // A publisher that stops sending media but keeps the control connection busy.
    let held = rtsp_url(&server, "held");
    let mut idle = RawPublisher::connect(rtsp).await;
    idle.start(&held, H264_SDP).await.expect("RECORD");
    idle.send_interleaved(0, &rtp_packet(1, 0, true, &[0x65, 0x88, 0x80]))
        .await;
    let started = std::time::Instant::now();
    let mut dropped_after = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, _) = idle.request("GET_PARAMETER", &held, &[], "").await;
        if status == 0 {
            dropped_after = Some(started.elapsed());
            break;
        }
    }
    let dropped_after = dropped_after.expect("keep-alives without media held the path");
    eprintln!("a publisher with keep-alives but no media was dropped after {dropped_after:?}");
    assert!(dropped_after >= Duration::from_secs(2), "{dropped_after:?}");
    let mut next = RawPublisher::connect(rtsp).await;
    next.start(&held, H264_SDP)
        .await
        .expect("the path is free for the next publisher");
    drop(next);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut slow = TcpStream::connect(rtsp).await.expect("connect");
    let started = std::time::Instant::now();
    let head = b"OPTIONS rtsp://x/cam RTSP/1.0\r\nCSeq: 1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for b in head {
        if slow.write_all(&[*b]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut one = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(250), slow.read(&mut one)).await
        {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the dribbling connection was never closed");
    eprintln!("a request dribbled at 4 bytes/s was cut after {closed_after:?}");
    assert!(closed_after < Duration::from_secs(6), "{closed_after:?}");

    // 300 idle connections from 127.0.0.1: the ones past the per-address cap are closed
    // at once; a client from 127.0.0.2 is still served.
    let mut all = Vec::new();
    for _ in 0..300 {
        all.push(TcpStream::connect(rtsp).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut held = Vec::new();
    let mut refused = 0;
    for s in all {
        let mut one = [0u8; 1];
        match s.try_read(&mut one) {
            Ok(0) => refused += 1,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => refused += 1,
            _ => held.push(s),
        }
    }
    eprintln!(
        "300 connections from one address: {} held, {refused} refused",
        held.len()
    );
    // ffmpeg's publishing connection, from 127.0.0.1 as well, holds one of the slots.
    assert_eq!(held.len(), hubcast::servers::rtsp::limits::MAX_PER_IP - 1);
    let other = tokio::net::TcpSocket::new_v4().expect("socket");
    other
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind");
    let mut other = other.connect(rtsp).await.expect("connect");
    other
        .write_all(b"OPTIONS rtsp://x/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .expect("write");
    let resp = read_response(&mut other).await;
    assert!(resp.starts_with("RTSP/1.0 200"), "{resp}");
    drop(held);
    healthy[0].snapshot(|r| {
        assert!(
            r.aus.len() > healthy_before + 60,
            "the viewer of another path stalled"
        );
        assert_eq!(r.seq_gaps, 0, "the viewer of another path saw a gap");
        assert!(r.closed_by_server.is_none());
    });
    healthy[0].close().await;
    ff.stop().await;
    server.shutdown();
}

/// A publisher that pipelines requests and never reads the replies: the server's writes
/// block, and used to block for ever, out of reach of readTimeout. Now a reply not written
/// within writeTimeout ends the connection, and the path is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_client_that_stops_reading_loses_its_path() {
    let _heavy = HEAVY.lock().await;
    let mut config = test_config();
    config.read_timeout = Duration::from_secs(2);
    config.write_timeout = Duration::from_secs(2);
    let server = start(config).await;
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let url = rtsp_url(&server, "stuck");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stuck = RawPublisher::over(socket.connect(rtsp).await.expect("connect"));
    stuck.start(&url, H264_SDP).await.expect("RECORD");
    let session = {
        let (_, r) = stuck.request("GET_PARAMETER", &url, &[], "").await;
        r.lines()
            .find_map(|l| l.strip_prefix("Session: "))
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
            .expect("session")
    };
    // 150,000 requests (12 MB): their replies outgrow any socket buffer, and none is read.
    // The write gives up once both sides' buffers are full.
    let one = format!("GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 9\r\nSession: {session}\r\n\r\n");
    let flood = one.repeat(150_000);
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncWriteExt::write_all(&mut stuck.stream, flood.as_bytes()),
    )
    .await;
    let started = std::time::Instant::now();
    let mut freed = None;
    while started.elapsed() < Duration::from_secs(15) {
        let mut next = RawPublisher::connect(rtsp).await;
        if next.start(&url, H264_SDP).await.is_ok() {
            freed = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let freed = freed.expect("a client that stopped reading held its path");
    eprintln!("a publisher that stopped reading lost its path {freed:?} after its flood");
    drop(stuck);
    server.shutdown();
}
