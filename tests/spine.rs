//! The spine end to end: ffmpeg pushes RTSP, real WebRTC peers play WHEP.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use hubcast::config::RtspTransport;
use hubcast::servers::webrtc::dtls_sniff::{SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80};
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;

const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;

/// What every viewer of a good stream must see over `secs` seconds.
async fn assert_plays_well(v: &mut Viewer, secs: u64) {
    assert!(
        v.wait_connected(Duration::from_secs(10)).await,
        "viewer did not connect"
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    v.snapshot(|r| {
        assert!(
            r.aus.len() >= 20 * secs as usize,
            "only {} access units in {secs} s",
            r.aus.len()
        );
        let first = &r.aus[0];
        let pos = |t| first.nal_types.iter().position(|&n| n == t);
        let (sps, pps, idr) = (pos(SPS), pos(PPS), pos(IDR));
        assert!(
            sps.is_some() && pps.is_some() && idr.is_some() && sps < idr && pps < idr,
            "first access unit is not SPS+PPS+IDR: {:?}",
            first.nal_types
        );
        assert_eq!(r.seq_gaps, 0, "RTP sequence gaps");
        assert_eq!(r.depacketize_errors, 0, "depacketizer errors");
        assert!(r.max_payload <= 1188, "payload of {} bytes", r.max_payload);
        // SPS+PPS ahead of every IDR.
        for au in &r.aus {
            if let Some(i) = au.nal_types.iter().position(|&n| n == IDR) {
                assert!(
                    au.nal_types[..i].contains(&SPS) && au.nal_types[..i].contains(&PPS),
                    "IDR without SPS/PPS: {:?}",
                    au.nal_types
                );
            }
        }
    });
}

fn assert_answer_rules(v: &Viewer, udp_port: u16) {
    for line in v.answer.lines() {
        let l = line.trim();
        if let Some(fb) = l.strip_prefix("a=rtcp-fb:") {
            assert_ne!(
                fb.split_once(' ').map(|(_, f)| f.trim()),
                Some("nack"),
                "bare nack in answer: {l}"
            );
        }
        assert!(
            !(l.starts_with("a=candidate:") && l.contains(".local")),
            "mDNS candidate: {l}"
        );
    }
    let cands = candidates(&v.answer);
    assert!(!cands.is_empty(), "answer has no candidates");
    for (ip, port) in cands {
        assert_eq!(
            port, udp_port,
            "candidate {ip}:{port} not on the configured UDP port"
        );
    }
    assert!(v.location.len() > 30, "Location {:?}", v.location);
}

async fn push_and_play(transport: RtspTransport) {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let udp_port = server.addrs.webrtc_udp.expect("udp").port();
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), transport, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;

    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("WHEP POST accepted");
    assert_answer_rules(&v, udp_port);
    assert_plays_well(&mut v, 3).await;
    assert_eq!(
        v.srtp_profile(),
        Some(SRTP_AEAD_AES_128_GCM),
        "GCM preferred"
    );
    let server_side: Vec<_> = server
        .webrtc
        .as_ref()
        .expect("webrtc")
        .sessions
        .all()
        .iter()
        .filter_map(|s| s.srtp_profile.get().copied())
        .collect();
    assert_eq!(
        server_side,
        vec![hubcast::config::SrtpProfile::AeadAes128Gcm],
        "the server agreed on the same profile"
    );

    // An offerer that only does AES_CM_128_HMAC_SHA1_80 still connects.
    let mut cm = Viewer::connect(
        &whep_url(&server, "cam"),
        ViewerOptions {
            srtp: vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
            ..Default::default()
        },
    )
    .await
    .expect("WHEP POST accepted");
    assert_plays_well(&mut cm, 2).await;
    assert_eq!(cm.srtp_profile(), Some(SRTP_AES128_CM_HMAC_SHA1_80));

    v.close().await;
    cm.close().await;
    assert!(
        wait_until(Duration::from_secs(5), || server.webrtc_sessions() == 0).await,
        "sessions not freed"
    );
    ff.stop().await;
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_tcp_push_plays_over_whep() {
    push_and_play(RtspTransport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_udp_push_plays_over_whep() {
    push_and_play(RtspTransport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_get_the_same_access_units_while_one_churns() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let url = whep_url(&server, "cam");

    let mut viewers = Vec::new();
    for _ in 0..20 {
        viewers.push(
            Viewer::connect(&url, ViewerOptions::default())
                .await
                .expect("POST"),
        );
    }
    for v in viewers.iter_mut() {
        assert!(
            v.wait_connected(Duration::from_secs(15)).await,
            "viewer did not connect"
        );
    }
    for i in 0..20 {
        let mut v = Viewer::connect(&url, ViewerOptions::default())
            .await
            .expect("churn POST");
        assert!(
            v.wait_connected(Duration::from_secs(10)).await,
            "churn viewer {i} did not connect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        v.close().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every viewer has the same access units over the window all of them saw.
    let sets: Vec<Vec<(u32, u64)>> = viewers
        .iter()
        .map(|v| {
            v.snapshot(|r| {
                assert_eq!(r.seq_gaps, 0, "sequence gaps");
                r.aus.iter().map(|a| (a.timestamp, a.hash)).collect()
            })
        })
        .collect();
    let start = sets
        .iter()
        .map(|s| s.first().map_or(u32::MAX, |a| a.0))
        .max()
        .expect("viewers");
    let end = sets
        .iter()
        .map(|s| s.last().map_or(0, |a| a.0))
        .min()
        .expect("viewers");
    assert!(end.wrapping_sub(start) > 90_000, "common window under 1 s");
    let window = |s: &Vec<(u32, u64)>| -> Vec<(u32, u64)> {
        s.iter()
            .copied()
            .filter(|(t, _)| t.wrapping_sub(start) <= end.wrapping_sub(start))
            .collect()
    };
    let reference = window(&sets[0]);
    assert!(reference.len() >= 30);
    for (i, s) in sets.iter().enumerate().skip(1) {
        assert_eq!(
            window(s),
            reference,
            "viewer {i} saw different access units"
        );
    }
    for v in &viewers {
        v.close().await;
    }
    assert!(wait_until(Duration::from_secs(5), || server.webrtc_sessions() == 0).await);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .paths
            .stream("cam")
            .is_ok_and(|h| h.reader_count() == 0))
        .await
    );
    ff.stop().await;
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_does_not_hurt_the_others() {
    let _heavy = HEAVY.lock().await;
    let mut config = test_config();
    config.write_queue_size = 64;
    let server = start(config).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;

    // A reader that never reads: its queue fills and the hub drops for it alone.
    let hub = server.paths.stream("cam").expect("stream");
    let stalled = hub.add_reader().expect("reader");
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("POST");
    assert_plays_well(&mut v, 3).await;
    assert!(
        stalled.dropped() > 0,
        "stalled reader's dropped counter did not rise"
    );
    assert!(hub.stats.dropped.load(Ordering::Relaxed) >= stalled.dropped());
    drop(stalled);
    v.close().await;
    ff.stop().await;
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_leaves_viewers_closed_path_reusable() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("POST");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;

    ff.stop().await;
    let left = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || server.webrtc_sessions() == 0).await,
        "viewer session not closed within 2 s of the publisher leaving"
    );
    let ended = wait_until(Duration::from_secs(2), || {
        v.snapshot(|r| r.closed_by_server.is_some())
    })
    .await;
    assert!(ended, "the viewer did not get the server's close_notify");
    eprintln!(
        "viewer closed {:?} after the publisher left",
        left.elapsed()
    );
    assert!(server.paths.stream("cam").is_err(), "path still busy");

    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let mut v2 = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("POST");
    assert_plays_well(&mut v2, 2).await;
    v2.close().await;
    ff.stop().await;
    server.shutdown();
}
