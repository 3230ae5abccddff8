//! Real peers for the integration tests: ffmpeg pushing RTSP, a `webrtc` crate offerer
//! playing WHEP, and a small hand-written RTSP publisher for crafted (and broken) packets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubcast::config::{Config, RtspTransport, SrtpProfile};
mod sniff;

use hubcast::Server;
use sniff::{SniffingConn, SrtpObserver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::process::{Child, Command};
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMux, UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp::codecs::h264::H264Packet;
use webrtc::rtp::packetizer::Depacketizer;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCPFeedback, RTCRtpTransceiverInit};

/// Tests that run an encoder take turns: two cores cannot run several x264 encoders,
/// many WebRTC peers and the server at once without starving one of them.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident set size (the in-process server included), in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "hubcast=info,webrtc=error".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Every listener on 127.0.0.1 with an ephemeral port.
pub fn test_config() -> Config {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Config {
        rtsp_address: any,
        rtp_address: any,
        rtcp_address: any,
        webrtc_address: any,
        webrtc_local_udp_address: any,
        api_address: any,
        metrics_address: any,
        pprof_address: any,
        ..Config::default()
    }
}

pub async fn start(config: Config) -> Server {
    init_tracing();
    Server::start(config).await.expect("server starts")
}

pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// x264 as the tests encode: baseline, no B-frames, low latency, ~2 Mbit/s (GOP added per use).
/// libx265 as a camera encodes (x265's default B-frames, a keyframe a second at 30 fps).
pub const X265: [&str; 8] = [
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    "-x265-params",
    "log-level=error:keyint=30",
];

pub const X264: [&str; 14] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-profile:v",
    "baseline",
    "-bf",
    "0",
    "-pix_fmt",
    "yuv420p",
    "-b:v",
    "2M",
];

/// ffmpeg pushing a 1280x720 30 fps x264 baseline test pattern (GOP `gop`) over RTSP.
pub struct Ffmpeg {
    child: Child,
}

impl Ffmpeg {
    pub fn push(url: &str, transport: RtspTransport, gop: u32, with_opus: bool) -> Ffmpeg {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30"]);
        if with_opus {
            cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
        }
        cmd.args(X264)
            .args(["-g", &gop.to_string(), "-keyint_min", &gop.to_string()]);
        if with_opus {
            cmd.args(["-c:a", "libopus", "-b:a", "64k"]);
        }
        let t = match transport {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        };
        cmd.args(["-f", "rtsp", "-rtsp_transport", t, url])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ffmpeg {
            child: cmd.spawn().expect("ffmpeg runs (apt-get install ffmpeg)"),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

pub fn rtsp_url(server: &Server, path: &str) -> String {
    format!("rtsp://{}/{path}", server.addrs.rtsp.expect("rtsp on"))
}

pub fn whep_url(server: &Server, path: &str) -> String {
    format!(
        "http://{}/{path}/whep",
        server.addrs.webrtc_http.expect("webrtc on")
    )
}

/// Waits until a path has a stream whose SPS is known.
pub async fn wait_stream(server: &Server, path: &str, timeout: Duration) {
    let ok = wait_until(timeout, || {
        server.paths.stream(path).is_ok_and(|h| {
            h.stats
                .packets_out
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
                || h.stats
                    .packets_in
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > 30
        })
    })
    .await;
    assert!(ok, "no stream on {path} within {timeout:?}");
}

/// One received access unit.
#[derive(Debug, Clone)]
pub struct Au {
    pub timestamp: u32,
    pub nal_types: Vec<u8>,
    /// FNV-1a of the Annex-B bytes: equal AUs on two viewers have equal hashes.
    pub hash: u64,
}

#[derive(Debug, Default)]
pub struct Received {
    pub packets: u64,
    pub audio_packets: u64,
    /// The audio packets' payload type (111 Opus, 0 PCMU, 8 PCMA in our offers).
    pub audio_pt: Option<u8>,
    /// The first audio payloads, concatenated (up to 64 KB): enough to measure a tone.
    pub audio_payload: Vec<u8>,
    pub seq_gaps: u64,
    pub max_payload: usize,
    pub aus: Vec<Au>,
    pub ended: Option<Instant>,
    /// When the server sent its DTLS close_notify.
    pub closed_by_server: Option<Instant>,
    pub depacketize_errors: u64,
    last_seq: Option<u16>,
    cur: Vec<u8>,
    cur_ts: Option<u32>,
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

fn nal_types(annexb: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= annexb.len() {
        if annexb[i..i + 4] == [0, 0, 0, 1] {
            if let Some(h) = annexb.get(i + 4) {
                out.push(h & 0x1f);
            }
            i += 4;
        } else {
            i += 1;
        }
    }
    out
}

impl Received {
    fn on_video(&mut self, pkt: &webrtc::rtp::packet::Packet, depack: &mut H264Packet) {
        self.packets += 1;
        self.max_payload = self.max_payload.max(pkt.payload.len());
        let seq = pkt.header.sequence_number;
        if let Some(last) = self.last_seq {
            let gap = seq.wrapping_sub(last).wrapping_sub(1);
            if gap != 0 && gap < 0x8000 {
                self.seq_gaps += gap as u64;
            }
        }
        self.last_seq = Some(seq);
        if self.cur_ts.is_some_and(|t| t != pkt.header.timestamp) {
            self.finish_au();
        }
        self.cur_ts = Some(pkt.header.timestamp);
        match depack.depacketize(&pkt.payload) {
            Ok(b) => self.cur.extend_from_slice(&b),
            Err(_) => self.depacketize_errors += 1,
        }
        if pkt.header.marker {
            self.finish_au();
        }
    }

    fn finish_au(&mut self) {
        if let Some(ts) = self.cur_ts.take() {
            if !self.cur.is_empty() {
                self.aus.push(Au {
                    timestamp: ts,
                    nal_types: nal_types(&self.cur),
                    hash: fnv(&self.cur),
                });
            }
        }
        self.cur.clear();
    }
}

/// A WHEP viewer: the `webrtc` crate as offerer, with its own UDP socket on loopback.
pub struct Viewer {
    pub pc: Arc<RTCPeerConnection>,
    pub received: Arc<Mutex<Received>>,
    pub answer: String,
    pub location: String,
    pub srtp: Arc<SrtpObserver>,
    pub posted_at: Instant,
    /// This peer's UDP address, as the server sees it.
    pub local_addr: SocketAddr,
    /// The peer's own socket: raw datagrams sent on it come from the peer's address.
    pub socket: Arc<UdpSocket>,
    /// The offer as posted.
    pub offer: String,
    pub connected: tokio::sync::watch::Receiver<RTCPeerConnectionState>,
}

fn h264_cap(plid: &str) -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: "video/H264".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={plid}"
        ),
        rtcp_feedback: vec![
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "".into(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "pli".into(),
            },
        ],
    }
}

pub struct ViewerOptions {
    pub srtp: Vec<SrtpProtectionProfile>,
    pub audio: bool,
    /// H.264 profile-level-ids offered, like Chromium's.
    pub h264: Vec<&'static str>,
    /// Set it to make the peer vanish without a word (no close_notify, no ICE consent).
    pub mute: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// An `Authorization` header for the WHEP POST.
    pub authorization: Option<String>,
    /// Put a fingerprint in the offer that is not the peer's certificate's.
    pub wrong_fingerprint: bool,
    /// Offer `a=setup:passive` (as ffmpeg's WHIP muxer does), so the server is the DTLS
    /// client; the `webrtc` crate then takes the server role from the answer's `active`.
    pub passive: bool,
    /// Offer G.722/8000, PCMU/8000 and PCMA/8000 after Opus, as browsers do.
    pub static_audio: bool,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        ViewerOptions {
            srtp: vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ],
            audio: true,
            h264: vec!["42001f", "42e01f", "4d001f"],
            mute: None,
            authorization: None,
            wrong_fingerprint: false,
            passive: false,
            static_audio: false,
        }
    }
}

#[derive(Debug)]
pub struct PostError {
    pub status: u16,
    pub body: String,
}

impl Viewer {
    pub async fn connect(url: &str, opts: ViewerOptions) -> Result<Viewer, PostError> {
        let mut m = MediaEngine::default();
        for (i, plid) in opts.h264.iter().enumerate() {
            m.register_codec(
                RTCRtpCodecParameters {
                    capability: h264_cap(plid),
                    payload_type: 102 + 2 * i as u8,
                    ..Default::default()
                },
                RTPCodecType::Video,
            )
            .expect("codec");
        }
        m.register_codec(
            RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: "audio/opus".into(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )
        .expect("codec");
        if opts.static_audio {
            for (mime, pt) in [("audio/G722", 9), ("audio/PCMU", 0), ("audio/PCMA", 8)] {
                m.register_codec(
                    RTCRtpCodecParameters {
                        capability: RTCRtpCodecCapability {
                            mime_type: mime.into(),
                            clock_rate: 8000,
                            channels: 1,
                            sdp_fmtp_line: String::new(),
                            rtcp_feedback: vec![],
                        },
                        payload_type: pt,
                        ..Default::default()
                    },
                    RTPCodecType::Audio,
                )
                .expect("codec");
            }
        }
        let registry =
            register_default_interceptors(Registry::new(), &mut m).expect("interceptors");

        let socket = big_buffer_udp().expect("udp");
        let local_addr = socket.local_addr().expect("local addr");
        let srtp = Arc::new(SrtpObserver::default());
        let received = Arc::new(Mutex::new(Received::default()));
        // The server hanging up shows as a DTLS alert (close_notify) on our socket.
        let mut alerts = srtp.alerts();
        let rx = Arc::clone(&received);
        tokio::spawn(async move {
            if alerts.recv().await.is_ok() {
                rx.lock().expect("lock").closed_by_server = Some(Instant::now());
            }
        });
        let socket = Arc::new(socket);
        let sniffing = SniffingConn::new(Arc::clone(&socket), Arc::clone(&srtp));
        let mux = match &opts.mute {
            Some(mute) => UDPMuxDefault::new(UDPMuxParams::new(MutableConn {
                inner: sniffing,
                mute: Arc::clone(mute),
            })),
            None => UDPMuxDefault::new(UDPMuxParams::new(sniffing)),
        };
        let mut s = SettingEngine::default();
        s.set_udp_network(UDPNetwork::Muxed(mux as Arc<dyn UDPMux + Send + Sync>));
        s.set_include_loopback_candidate(true);
        s.set_network_types(vec![NetworkType::Udp4]);
        s.set_ip_filter(Box::new(|ip| ip.is_loopback()));
        s.set_ice_multicast_dns_mode(webrtc::ice::mdns::MulticastDnsMode::Disabled);
        s.set_srtp_protection_profiles(opts.srtp.clone());
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_interceptor_registry(registry)
            .with_setting_engine(s)
            .build();
        let pc = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .expect("pc"),
        );
        let (state_tx, connected) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
        pc.on_peer_connection_state_change(Box::new(move |st| {
            state_tx.send_replace(st);
            Box::pin(async {})
        }));
        let recvonly = || {
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                send_encodings: vec![],
            })
        };
        pc.add_transceiver_from_kind(RTPCodecType::Video, recvonly())
            .await
            .expect("video transceiver");
        if opts.audio {
            pc.add_transceiver_from_kind(RTPCodecType::Audio, recvonly())
                .await
                .expect("audio transceiver");
        }
        let rx = Arc::clone(&received);
        pc.on_track(Box::new(move |track, _, _| {
            let rx = Arc::clone(&rx);
            Box::pin(async move {
                tokio::spawn(async move {
                    let video = track.kind() == RTPCodecType::Video;
                    let mut depack = H264Packet::default();
                    while let Ok((pkt, _)) = track.read_rtp().await {
                        let mut r = rx.lock().expect("lock");
                        if video {
                            r.on_video(&pkt, &mut depack);
                        } else {
                            r.audio_packets += 1;
                            r.audio_pt.get_or_insert(pkt.header.payload_type);
                            if r.audio_payload.len() < 64 * 1024 {
                                r.audio_payload.extend_from_slice(&pkt.payload);
                            }
                        }
                    }
                    if video {
                        rx.lock().expect("lock").ended = Some(Instant::now());
                    }
                });
            })
        }));
        let offer = pc.create_offer(None).await.expect("offer");
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await.expect("local");
        let _ = gathered.recv().await;
        let mut offer = pc.local_description().await.expect("offer sdp").sdp;
        if opts.wrong_fingerprint {
            offer = offer
                .lines()
                .map(|l| {
                    if l.starts_with("a=fingerprint:sha-256 ") {
                        format!("a=fingerprint:sha-256 {}00", "00:".repeat(31))
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\r\n")
                + "\r\n";
        }
        if opts.passive {
            offer = offer.replace("a=setup:actpass", "a=setup:passive");
        }

        let posted_at = Instant::now();
        let (status, headers, body) = match &opts.authorization {
            Some(a) => post_with_auth(url, &offer, a).await,
            None => post_sdp(url, &offer).await,
        };
        if status != 201 {
            let _ = pc.close().await;
            return Err(PostError { status, body });
        }
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        pc.set_remote_description(RTCSessionDescription::answer(body.clone()).expect("answer"))
            .await
            .expect("remote");
        Ok(Viewer {
            pc,
            received,
            answer: body,
            location,
            srtp,
            posted_at,
            local_addr,
            socket,
            offer,
            connected,
        })
    }

    pub async fn wait_connected(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(
            timeout,
            self.connected
                .wait_for(|s| *s == RTCPeerConnectionState::Connected),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// The SRTP profile this peer (the DTLS server) chose, read off its ServerHello.
    pub fn srtp_profile(&self) -> Option<u16> {
        // One remote only: the server's UDP port.
        let cands = candidates(&self.answer);
        cands
            .iter()
            .find_map(|(ip, port)| self.srtp.profile_for(SocketAddr::new(*ip, *port)))
    }

    pub fn snapshot<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.received.lock().expect("lock"))
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// A loopback UDP socket with 4 MB of receive buffer: the test peer must never be the one
/// that loses packets.
fn big_buffer_udp() -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    s.set_recv_buffer_size(4 << 20)?;
    s.set_nonblocking(true)?;
    let addr: SocketAddr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// (ip, port) of every UDP candidate in an SDP.
pub fn candidates(sdp: &str) -> Vec<(std::net::IpAddr, u16)> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter_map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            if f.get(2).map(|t| t.to_ascii_lowercase()) != Some("udp".into()) {
                return None;
            }
            Some((f.get(4)?.parse().ok()?, f.get(5)?.parse().ok()?))
        })
        .collect()
}

pub async fn post_sdp(url: &str, offer: &str) -> (u16, reqwest::header::HeaderMap, String) {
    post_raw(url, "application/sdp", offer.as_bytes().to_vec()).await
}

pub async fn post_raw(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    post(url, content_type, body, None).await
}

async fn post(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Content-Type", content_type);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let r = req.body(body).send().await.expect("HTTP request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap_or_default())
}

/// `n` WHEP viewers, each connected (ICE + DTLS) before the next.
pub async fn connect_viewers(url: &str, n: usize) -> Vec<Viewer> {
    let mut viewers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut v = Viewer::connect(url, ViewerOptions::default())
            .await
            .expect("WHEP");
        assert!(v.wait_connected(Duration::from_secs(10)).await);
        viewers.push(v);
    }
    viewers
}

/// A hand-written RTSP publisher over TCP: sends whatever RTP it is given.
pub struct RawPublisher {
    pub stream: TcpStream,
    cseq: u32,
    session: Option<String>,
}

pub const H264_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n";

impl RawPublisher {
    pub async fn connect(addr: SocketAddr) -> RawPublisher {
        RawPublisher::over(TcpStream::connect(addr).await.expect("connect"))
    }

    /// Over a connection the caller set up (socket options, a local address).
    pub fn over(stream: TcpStream) -> RawPublisher {
        RawPublisher {
            stream,
            cseq: 0,
            session: None,
        }
    }

    /// Sends one request and returns (status, whole response text).
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(s) = &self.session {
            req.push_str(&format!("Session: {s}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream.write_all(req.as_bytes()).await.expect("write");
        let resp = read_response(&mut self.stream).await;
        if let Some(s) = resp
            .lines()
            .find_map(|l| l.strip_prefix("Session: "))
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        {
            self.session = Some(s);
        }
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, resp)
    }

    /// ANNOUNCE + SETUP (interleaved 0-1) + RECORD of an H.264 track on `url`.
    pub async fn start(&mut self, url: &str, sdp: &str) -> Result<(), String> {
        let (s, r) = self
            .request("ANNOUNCE", url, &[("Content-Type", "application/sdp")], sdp)
            .await;
        if s != 200 {
            return Err(r);
        }
        let (s, r) = self
            .request(
                "SETUP",
                &format!("{url}/trackID=0"),
                &[(
                    "Transport",
                    "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
                )],
                "",
            )
            .await;
        if s != 200 {
            return Err(r);
        }
        let (s, r) = self.request("RECORD", url, &[], "").await;
        if s != 200 {
            return Err(r);
        }
        Ok(())
    }

    /// Writes bytes as they are (interleaved frames built by the caller).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send_interleaved(&mut self, channel: u8, payload: &[u8]) {
        let mut frame = vec![b'$', channel];
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.expect("write");
    }
}

pub fn rtp_packet(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&0x1234u32.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Reads one RTSP response (headers + Content-Length body) as text.
pub async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return String::from_utf8_lossy(&buf[..end + 4 + len]).to_string();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return String::from_utf8_lossy(&buf).to_string(),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn gcm_only() -> Vec<SrtpProfile> {
    vec![SrtpProfile::AeadAes128Gcm]
}

pub fn bytes(v: Vec<u8>) -> Bytes {
    Bytes::from(v)
}

/// A WHIP publisher: the `webrtc` crate as offerer, sending RTP that ffmpeg produces
/// (H.264 packetization-mode=1 with 1200-byte packets, and Opus), like a hardware encoder
/// or GStreamer's whipsink would.
pub struct WhipPublisher {
    pub pc: Arc<RTCPeerConnection>,
    pub location: String,
    pub plis: Arc<std::sync::atomic::AtomicU64>,
    ffmpeg: Vec<Child>,
}

impl WhipPublisher {
    pub async fn connect(url: &str, gop: u32) -> Result<WhipPublisher, PostError> {
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
        use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

        let mut m = MediaEngine::default();
        m.register_default_codecs().expect("codecs");
        let registry =
            register_default_interceptors(Registry::new(), &mut m).expect("interceptors");
        let mut s = SettingEngine::default();
        s.set_include_loopback_candidate(true);
        s.set_network_types(vec![NetworkType::Udp4]);
        s.set_ip_filter(Box::new(|ip| ip.is_loopback()));
        s.set_ice_multicast_dns_mode(webrtc::ice::mdns::MulticastDnsMode::Disabled);
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_interceptor_registry(registry)
            .with_setting_engine(s)
            .build();
        let pc = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .expect("pc"),
        );
        let video = Arc::new(TrackLocalStaticRTP::new(
            h264_cap("42e01f"),
            "video".into(),
            "whip".into(),
        ));
        let audio = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: "audio/opus".into(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            "audio".into(),
            "whip".into(),
        ));
        let plis = Arc::new(std::sync::atomic::AtomicU64::new(0));
        for (track, count) in [
            (
                Arc::clone(&video) as Arc<dyn TrackLocal + Send + Sync>,
                true,
            ),
            (
                Arc::clone(&audio) as Arc<dyn TrackLocal + Send + Sync>,
                false,
            ),
        ] {
            let sender = pc.add_track(track).await.expect("track");
            let plis = Arc::clone(&plis);
            tokio::spawn(async move {
                while let Ok((pkts, _)) = sender.read_rtcp().await {
                    for p in pkts {
                        if count && p.as_any().is::<PictureLossIndication>() {
                            plis.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        let offer = pc.create_offer(None).await.expect("offer");
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await.expect("local");
        let _ = gathered.recv().await;
        let offer = pc.local_description().await.expect("offer").sdp;
        let (status, headers, body) = post_sdp(url, &offer).await;
        if status != 201 {
            let _ = pc.close().await;
            return Err(PostError { status, body });
        }
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        pc.set_remote_description(RTCSessionDescription::answer(body).expect("answer"))
            .await
            .expect("remote");

        // ffmpeg -> RTP on loopback -> our tracks.
        let vsock = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let asock = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let vport = vsock.local_addr().expect("addr").port();
        let aport = asock.local_addr().expect("addr").port();
        let gop = gop.to_string();
        let v = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=1280x720:rate=30",
            ])
            .args(X264)
            .args(["-g", &gop, "-keyint_min", &gop])
            .args([
                "-f",
                "rtp",
                "-payload_type",
                "96",
                "-pkt_size",
                "1200",
                &format!("rtp://127.0.0.1:{vport}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg");
        let a = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args([
                "-c:a",
                "libopus",
                "-b:a",
                "64k",
                "-f",
                "rtp",
                "-payload_type",
                "111",
                &format!("rtp://127.0.0.1:{aport}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg");
        for (sock, track) in [(vsock, video), (asock, audio)] {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok(n) = sock.recv(&mut buf).await {
                    if track.write(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(WhipPublisher {
            pc,
            location,
            plis,
            ffmpeg: vec![v, a],
        })
    }

    pub fn plis(&self) -> u64 {
        self.plis.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn stop(mut self) {
        for c in &mut self.ffmpeg {
            let _ = c.kill().await;
        }
        let _ = self.pc.close().await;
    }
}

pub async fn http_request(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = reqwest::Client::new()
        .request(m, url)
        .body(body.to_string());
    if let Some(ct) = content_type {
        r = r.header("Content-Type", ct);
    }
    let resp = r.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A real RTSP camera: GStreamer's gst-rtsp-server (scripts/rtsp-camera.py) serving
/// H.264 + Opus at rtsp://127.0.0.1:PORT/cam. Its stdout tells who connects and leaves.
pub struct Camera {
    child: Child,
    pub port: u16,
    pub events: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Camera {
    pub async fn start(port: u16, args: &[&str]) -> Camera {
        use tokio::io::AsyncBufReadExt;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rtsp-camera.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0)");
        let stdout = child.stdout.take().expect("stdout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = Arc::clone(&events);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                ev.lock().expect("lock").push((Instant::now(), line));
            }
        });
        let cam = Camera {
            child,
            port,
            events,
        };
        let ready = wait_until(Duration::from_secs(15), || cam.count("READY") > 0).await;
        assert!(ready, "the RTSP camera did not start");
        cam
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// How many lines start with `word` (READY, CLIENT, CLOSED).
    pub fn count(&self, word: &str) -> usize {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, l)| l.starts_with(word))
            .count()
    }

    pub fn last(&self, word: &str) -> Option<Instant> {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|(_, l)| l.starts_with(word))
            .map(|(t, _)| *t)
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

/// A config whose path `name` pulls `url`.
pub fn pull_config(
    name: &str,
    url: &str,
    tweak: impl FnOnce(&mut hubcast::config::PathConf),
) -> Config {
    let mut c = test_config();
    let mut p = hubcast::config::PathConf {
        source: url.to_string(),
        ..Default::default()
    };
    tweak(&mut p);
    c.paths.insert(0, (name.to_string(), p));
    c
}

/// A socket that can go silent: what the server sees of a peer whose network vanished.
struct MutableConn {
    inner: SniffingConn,
    mute: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl webrtc::util::Conn for MutableConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc::util::Result<()> {
        self.inner.connect(addr).await
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        self.inner.recv(buf).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        loop {
            let r = self.inner.recv_from(buf).await?;
            if !self.mute.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(r);
            }
        }
    }
    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        self.inner.send(buf).await
    }
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc::util::Result<usize> {
        if self.mute.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(buf.len());
        }
        self.inner.send_to(buf, target).await
    }
    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        self.inner.local_addr()
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> webrtc::util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Runs an ffmpeg tool (bounded), failing the test with its stderr if it fails.
pub async fn ffmpeg_tool(program: &str, args: &[&str], limit: Duration) -> std::process::Output {
    let out = tokio::time::timeout(
        limit,
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} finished in time"))
    .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `codec,width,height` of the first video stream as ffprobe reads it over RTSP.
pub async fn ffprobe(url: &str, transport: &str) -> String {
    ffprobe_stream(url, transport, "v:0", "stream=codec_name,width,height").await
}

/// What ffprobe shows of one stream (`v:0`, `a:0`) over RTSP, as CSV of `entries`.
pub async fn ffprobe_stream(url: &str, transport: &str, stream: &str, entries: &str) -> String {
    let args = [
        "-v",
        "error",
        "-rtsp_transport",
        transport,
        "-select_streams",
        stream,
        "-show_entries",
        entries,
        "-of",
        "csv=p=0",
        url,
    ];
    let out = ffmpeg_tool("ffprobe", &args, Duration::from_secs(20)).await;
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// ffmpeg pushing a 640x360 30 fps test pattern over RTSP (TCP), encoded as `encoder` says.
pub fn push_video(url: &str, encoder: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"])
        .args(encoder)
        .args(["-f", "rtsp", "-rtsp_transport", "tcp", url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs")
}

/// Decodes 90 frames; returns ffmpeg's error output (empty when clean).
pub async fn decode_90(url: &str, transport: &str) -> String {
    let args = [
        "-v",
        "error",
        "-rtsp_transport",
        transport,
        "-i",
        url,
        "-frames:v",
        "90",
        "-f",
        "null",
        "-",
    ];
    let out = ffmpeg_tool("ffmpeg", &args, Duration::from_secs(30)).await;
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// POSTs an SDP offer with an `Authorization` header.
pub async fn post_with_auth(
    url: &str,
    offer: &str,
    authorization: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    post(
        url,
        "application/sdp",
        offer.as_bytes().to_vec(),
        Some(authorization),
    )
    .await
}
