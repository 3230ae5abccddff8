//! WHIP publishing end to end with a real WebRTC publisher, watched over WHEP.

mod common;

use std::time::{Duration, Instant};

use common::*;

const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;

fn whip_url(server: &hubcast::Server, path: &str) -> String {
    format!(
        "http://{}/{path}/whip",
        server.addrs.webrtc_http.expect("webrtc on")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publisher_plays_over_whep_with_audio_and_keyframe_requests() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let http = server.addrs.webrtc_http.expect("http");
    // A 5 s GOP: the viewer must not wait for the next natural keyframe.
    let publisher = WhipPublisher::connect(&whip_url(&server, "cam"), 150)
        .await
        .expect("WHIP accepted");
    assert!(
        publisher.location.starts_with("/cam/whip/"),
        "{}",
        publisher.location
    );
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // well inside the GOP

    let plis_before = publisher.plis();
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("WHEP");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    // Two encoders, two WebRTC peers and the server share 2 cores here: allow 5 s for 60 frames
    // (the browser test's bar), not 3.
    tokio::time::sleep(Duration::from_secs(5)).await;
    v.snapshot(|r| {
        assert!(
            r.aus.len() >= 60,
            "only {} access units in 5 s",
            r.aus.len()
        );
        let first = &r.aus[0].nal_types;
        let pos = |t| first.iter().position(|&n| n == t);
        assert!(
            pos(SPS) < pos(IDR) && pos(PPS) < pos(IDR) && pos(IDR).is_some(),
            "first AU {first:?}"
        );
        assert_eq!(r.seq_gaps, 0);
        assert!(r.max_payload <= 1188);
        assert!(r.audio_packets > 50, "audio packets {}", r.audio_packets);
    });
    assert!(
        publisher.plis() > plis_before,
        "no PLI reached the publisher when a viewer joined"
    );

    // A second publisher is refused with the reason.
    let second = WhipPublisher::connect(&whip_url(&server, "cam"), 30)
        .await
        .err()
        .expect("refused");
    assert_eq!(second.status, 409, "{}", second.body);
    assert!(
        second.body.contains("already has a publisher"),
        "{}",
        second.body
    );

    // Bad requests on sessions.
    let (s, _) = http_request(
        "DELETE",
        &format!("http://{http}/cam/whip/00000000000000000000000000000000"),
        None,
        "",
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = http_request(
        "PATCH",
        &format!("http://{http}{}", publisher.location),
        Some("application/trickle-ice-sdpfrag"),
        "nonsense",
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = http_request(
        "PATCH",
        &format!("http://{http}{}", publisher.location),
        Some("application/trickle-ice-sdpfrag"),
        "a=end-of-candidates\r\n",
    )
    .await;
    assert_eq!(s, 204);

    // DELETE ends the publish: the viewer is closed within 2 s and the path is free.
    let (s, body) = http_request(
        "DELETE",
        &format!("http://{http}{}", publisher.location),
        None,
        "",
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || server.webrtc_sessions() == 0).await,
        "sessions left after DELETE"
    );
    assert!(
        wait_until(Duration::from_secs(2), || v
            .snapshot(|r| r.closed_by_server.is_some()))
        .await
    );
    eprintln!("viewer closed {:?} after DELETE", t.elapsed());
    assert!(server.paths.stream("cam").is_err());
    publisher.stop().await;

    let again = WhipPublisher::connect(&whip_url(&server, "cam"), 30)
        .await
        .expect("path free again");
    again.stop().await;
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_offers_without_usable_tracks_are_refused() {
    let server = start(test_config()).await;
    let vp8 = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 1B:3A:F7:44:5E:D1:ED:A8:E0:70:FC:AD:2F:F1:4A:13:D8:D6:07:CE:42:41:7D:A8:36:1F:1E:68:C2:1B:27:A8\r\na=setup:actpass\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 MP4V-ES/90000\r\n";
    let (s, _, body) = post_sdp(&whip_url(&server, "cam"), vp8).await;
    assert_eq!(s, 406, "{body}");
    assert!(body.contains("H.264") && body.contains("Opus"), "{body}");
    assert!(
        server.paths.stream("cam").is_err(),
        "a refused offer must not claim the path"
    );

    // Two sessions' URLs share nothing guessable.
    let chromium = include_str!("data/chromium-whip-offer.sdp");
    let (s1, h1, b1) = post_sdp(&whip_url(&server, "a"), chromium).await;
    let (s2, h2, b2) = post_sdp(&whip_url(&server, "b"), chromium).await;
    assert_eq!((s1, s2), (201, 201), "{b1} {b2}");
    let secret = |h: &reqwest::header::HeaderMap| {
        h.get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.rsplit('/').next())
            .unwrap_or_default()
            .to_string()
    };
    let (x, y) = (secret(&h1), secret(&h2));
    assert_eq!(x.len(), 32);
    let same = x.chars().zip(y.chars()).filter(|(a, b)| a == b).count();
    assert!(same < 12, "session secrets {x} and {y} look related");
    assert!(h1.get("etag").is_some());
    server.shutdown();
}
