//! What a WebRTC peer can do to the server with datagrams it crafts itself: a runt SRTCP
//! packet, an ICE nomination from an address it does not own (a reflection attack), a check
//! for its session sent from another viewer's address, and junk meant to keep a dead
//! session's consent alive. A healthy viewer watches throughout and must see no gap.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hubcast::config::RtspTransport;
use tokio::net::UdpSocket;
use webrtc::ice::control::AttrControlling;
use webrtc::ice::use_candidate::UseCandidateAttr;
use webrtc::stun::agent::TransactionId;
use webrtc::stun::attributes::ATTR_USERNAME;
use webrtc::stun::fingerprint::FINGERPRINT;
use webrtc::stun::integrity::MessageIntegrity;
use webrtc::stun::message::{Message, Setter, BINDING_REQUEST};
use webrtc::stun::textattrs::Username;

fn attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{name} in {sdp}"))
}

/// A valid, nominating ICE check for `viewer`'s session, as only that peer could write it.
fn nomination(viewer: &Viewer) -> Vec<u8> {
    let server_ufrag = attr(&viewer.answer, "a=ice-ufrag:");
    let server_pwd = attr(&viewer.answer, "a=ice-pwd:");
    let our_ufrag = attr(&viewer.offer, "a=ice-ufrag:");
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(
            ATTR_USERNAME,
            format!("{server_ufrag}:{our_ufrag}"),
        )),
        Box::new(UseCandidateAttr::new()),
        Box::new(AttrControlling(7)),
        Box::new(MessageIntegrity::new_short_term_integrity(
            server_pwd.to_string(),
        )),
        Box::new(FINGERPRINT),
    ];
    m.build(&setters).expect("STUN check");
    m.raw
}

/// Datagrams arriving at `socket` for `window`: (all, SRTP/SRTCP ones).
async fn count_arrivals(socket: &UdpSocket, window: Duration) -> (usize, usize) {
    let mut buf = vec![0u8; 2048];
    let (mut all, mut media) = (0, 0);
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        all += 1;
        if n > 0 && (128..192).contains(&buf[0]) {
            media += 1;
        }
    }
    (all, media)
}

async fn watch(server: &hubcast::Server, path: &str) -> Viewer {
    let mut v = Viewer::connect(&whep_url(server, path), ViewerOptions::default())
        .await
        .expect("WHEP POST");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    assert!(
        wait_until(Duration::from_secs(10), || v.snapshot(|r| r.aus.len() > 3)).await,
        "frames arrive"
    );
    v
}

fn aus(v: &Viewer) -> usize {
    v.snapshot(|r| r.aus.len())
}

/// More than 30 new access units reach `v` within 5 s.
async fn assert_flowing(v: &Viewer, what: &str) {
    let before = aus(v);
    assert!(
        wait_until(Duration::from_secs(5), || aus(v) > before + 30).await,
        "{what}"
    );
}

fn panics(server: &hubcast::Server) -> u64 {
    server
        .paths
        .telemetry
        .session_panics
        .load(Ordering::Relaxed)
}

fn server_udp(server: &hubcast::Server) -> SocketAddr {
    server.addrs.webrtc_udp.expect("udp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_datagrams_cost_the_sender_nothing_and_others_nothing() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let cam = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let healthy = watch(&server, "cam").await;
    let gaps_before = healthy.snapshot(|r| r.seq_gaps);
    let udp = server_udp(&server);

    // 1. A 4-byte "SRTCP" packet (an SR header and nothing else) from an established peer.
    //    webrtc-srtp indexes past its end; the session must drop it and go on.
    let attacker = watch(&server, "cam").await;
    for runt in [&[0x80u8, 200, 0, 0][..], &[0x81, 201, 0, 1, 0, 0, 0, 0][..]] {
        attacker.socket.send_to(runt, udp).await.expect("send");
    }
    assert_flowing(&attacker, "the session that sent runt SRTCP goes on").await;
    assert_eq!(panics(&server), 0);

    // 2. A nomination for the attacker's own session from an address it does not own
    //    (stand-in: another socket): media must not move there before that address has
    //    answered a consent check, which a victim never does.
    let victim = UdpSocket::bind("127.0.0.1:0").await.expect("victim");
    victim
        .send_to(&nomination(&attacker), udp)
        .await
        .expect("send");
    let (all, media) = count_arrivals(&victim, Duration::from_secs(3)).await;
    assert_eq!(media, 0, "media was reflected to the spoofed address");
    assert!(
        all <= 10,
        "only STUN (a response and a few consent probes) may go there: {all}"
    );
    assert_flowing(&attacker, "the real peer keeps its media").await;

    // 3. The attacker's check sent from the healthy viewer's address (its socket): that
    //    address belongs to a live session and must stay with it.
    healthy
        .socket
        .send_to(&nomination(&attacker), udp)
        .await
        .expect("send");
    let before = (aus(&attacker), aus(&healthy));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        aus(&attacker) > before.0 + 30,
        "the attacker's session is unchanged"
    );
    assert!(
        aus(&healthy) > before.1 + 30,
        "the healthy viewer keeps its media"
    );

    // 4. A peer that went silent, with junk (not STUN, not authenticated SRTP) sent from its
    //    address: that is not consent, and the session ends on the consent timeout.
    let mute = Arc::new(AtomicBool::new(false));
    let opts = ViewerOptions {
        mute: Some(Arc::clone(&mute)),
        ..Default::default()
    };
    let mut dead = Viewer::connect(&whep_url(&server, "cam"), opts)
        .await
        .expect("WHEP POST");
    assert!(dead.wait_connected(Duration::from_secs(10)).await);
    let sessions = || server.webrtc.as_ref().expect("webrtc").sessions.len();
    let with_dead = sessions();
    mute.store(true, Ordering::Relaxed);
    let junk = {
        let mut j = vec![0x80u8, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        j.extend_from_slice(&[0xAB; 64]);
        j
    };
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let _ = dead.socket.send_to(&junk, udp).await;
            if sessions() < with_dead {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "junk kept a silent peer's session alive");

    // 5. The attacker's valid checks sprayed from 200 addresses, 5 ms apart: a few consent
    //    probes in all (not one per address), and at most MAX_ADDRESSES routed to it.
    let transport = &server.webrtc.as_ref().expect("webrtc").transport;
    let routed_before = transport.addresses();
    let mut spoofed = Vec::new();
    for i in 0..200u32 {
        let ip = std::net::Ipv4Addr::from(0x7f00_0a00 + i);
        spoofed.push(UdpSocket::bind((ip, 0)).await.expect("bind 127.0.10.x"));
    }
    for s in &spoofed {
        s.send_to(&nomination(&attacker), udp).await.expect("send");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut responses, mut probes) = (0, 0);
    let mut buf = [0u8; 1500];
    for s in &spoofed {
        while let Ok((n, _)) = s.try_recv_from(&mut buf) {
            match &buf[..n.min(2)] {
                [0x01, 0x01] => responses += 1,
                [0x00, 0x01] => probes += 1,
                _ => panic!("only STUN may go to an address that never answered"),
            }
        }
    }
    eprintln!("checks from 200 addresses: {responses} responses, {probes} consent probes");
    assert_eq!(responses, 200, "each valid check is answered once");
    assert!(
        probes <= 10,
        "{probes} consent probes for 200 sprayed addresses"
    );
    let routed = transport.addresses();
    assert!(
        routed <= routed_before + hubcast::servers::webrtc::transport::peer::MAX_ADDRESSES,
        "{routed_before} -> {routed} routed addresses"
    );
    assert_flowing(&attacker, "the sprayer's own media stays where it was").await;

    let gaps = healthy.snapshot(|r| r.seq_gaps) - gaps_before;
    assert_eq!(
        gaps, 0,
        "the healthy viewer lost packets while the attacks ran"
    );
    assert_eq!(panics(&server), 0);
    dead.close().await;
    attacker.close().await;
    healthy.close().await;
    cam.stop().await;
    server.shutdown();
}
