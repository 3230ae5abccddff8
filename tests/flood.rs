//! A publisher floods its path with tiny RTP packets: memory stays bounded (each packet
//! used to pin its slice of a 16 KiB read buffer, and the caches counted bytes only), and
//! the path still takes a new reader at once afterwards.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A real x264 SPS/PPS (High, 1280x720) in the SDP, so the path has a stream readers can
/// negotiate before any RTP arrives.
const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA; profile-level-id=64001F\r\na=control:trackID=0\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_tiny_packets_keep_memory_bounded() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let rtsp = server.addrs.rtsp.expect("rtsp");
    // A viewer of another path watches through the flood.
    let ff = Ffmpeg::push(
        &rtsp_url(&server, "live"),
        hubcast::config::RtspTransport::Tcp,
        30,
        false,
    );
    wait_stream(&server, "live", Duration::from_secs(15)).await;
    let healthy = connect_viewers(&whep_url(&server, "live"), 1).await;
    let healthy_before = healthy[0].snapshot(|r| r.aus.len());
    let mut p = RawPublisher::connect(rtsp).await;
    p.start(&format!("rtsp://{rtsp}/tiny"), SDP)
        .await
        .expect("publish");
    // A keyframe first, so the GOP cache fills with what follows.
    let idr = rtp_packet(65535, 0, true, &[0x65, 0x88, 0x84, 0x00, 0x33]);
    p.send_interleaved(0, &idr).await;
    let before = rss_kib();
    // 13-byte RTP packets (a 1-byte non-IDR slice each, one access unit per packet), sent
    // in batches so the socket, not this loop, sets the pace.
    let mut batch = Vec::with_capacity(17 * 4096);
    let total = 1_000_000u32;
    let started = Instant::now();
    for i in 0..total {
        let pkt = rtp_packet(i as u16, (i + 1).wrapping_mul(3000), true, &[0x41]);
        batch.extend_from_slice(&[b'$', 0]);
        batch.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
        batch.extend_from_slice(&pkt);
        if batch.len() >= 16 * 4096 || i + 1 == total {
            p.send_raw(&batch).await;
            batch.clear();
        }
    }
    let hub = server.paths.stream("tiny").expect("the path is still up");
    let arrived = wait_until(Duration::from_secs(30), || {
        hub.stats
            .packets_in
            .load(std::sync::atomic::Ordering::Relaxed)
            >= u64::from(total)
    })
    .await;
    assert!(arrived, "the server took all the packets");
    let after = rss_kib();
    let grown_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "1M 13-byte packets in {:?}: RSS {} -> {} KiB (+{grown_mib:.1} MiB)",
        started.elapsed(),
        before,
        after
    );
    assert!(grown_mib <= 64.0, "RSS grew {grown_mib:.1} MiB");

    let joined = Instant::now();
    let opts = ViewerOptions {
        h264: vec!["42e01f", "64001f"],
        ..Default::default()
    };
    let mut v = Viewer::connect(&whep_url(&server, "tiny"), opts)
        .await
        .expect("WHEP");
    assert!(
        v.wait_connected(Duration::from_secs(1)).await,
        "a reader joins within 1 s"
    );
    eprintln!(
        "a WHEP reader joined {:?} after the flood",
        joined.elapsed()
    );
    v.close().await;
    healthy[0].snapshot(|r| {
        assert!(
            r.aus.len() > healthy_before + 20,
            "the other path's viewer stalled"
        );
        assert_eq!(r.seq_gaps, 0, "the other path's viewer saw a gap");
    });
    healthy[0].close().await;
    ff.stop().await;
    server.shutdown();
}
