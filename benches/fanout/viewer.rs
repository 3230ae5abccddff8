//! A lightweight WHEP viewer: one UDP socket, a hand-made SDP offer, real ICE (as the
//! controlling agent) and a real DTLS handshake (as DTLS server: the answerer picks `active`),
//! then no SRTP at all: the RTP header stays in clear under SRTP, so packets and sequence gaps
//! are counted from it. No `RTCPeerConnection`, so hundreds of viewers fit beside the server.
//!
//! Demultiplexing by first byte (RFC 7983): 0..3 STUN, 20..63 DTLS, 128..191 RTP/RTCP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use webrtc::dtls::config::{ClientAuthType, Config as DtlsConfig, ExtendedMasterSecretType};
use webrtc::dtls::conn::DTLSConn;
use webrtc::dtls::crypto::Certificate;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::ice::control::AttrControlling;
use webrtc::ice::priority::PriorityAttr;
use webrtc::ice::use_candidate::UseCandidateAttr;
use webrtc::stun::agent::TransactionId;
use webrtc::stun::attributes::ATTR_USERNAME;
use webrtc::stun::fingerprint::FINGERPRINT;
use webrtc::stun::integrity::MessageIntegrity;
use webrtc::stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use webrtc::stun::textattrs::Username;
use webrtc::stun::xoraddr::XorMappedAddress;
use webrtc::util::Conn;

use super::publisher::Window;

/// What every viewer shares.
pub struct Shared {
    pub window: Arc<Window>,
    pub cert: Certificate,
    /// sha-256 fingerprint of `cert`, as SDP writes it.
    pub fingerprint: String,
    pub http: reqwest::Client,
    pub url: String,
    /// Where the server's WebRTC UDP port is (used if the answer had no usable candidate).
    pub server_udp: SocketAddr,
    pub base: Instant,
}

impl Shared {
    pub fn new(window: Arc<Window>, url: String, server_udp: SocketAddr) -> Result<Shared, String> {
        let cert = Certificate::generate_self_signed(vec!["hubcast-bench".to_string()])
            .map_err(|e| format!("certificate: {e}"))?;
        let fingerprint = webrtc::peer_connection::certificate::RTCCertificate::from_existing(
            cert.clone(),
            std::time::SystemTime::now() + Duration::from_secs(86400),
        )
        .get_fingerprints()
        .into_iter()
        .next()
        .ok_or("no fingerprint")?
        .value
        .to_uppercase();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Shared {
            window,
            cert,
            fingerprint,
            http,
            url,
            server_udp,
            base: Instant::now(),
        })
    }
}

/// Counters one viewer's I/O task updates (one writer; read by the harness).
#[derive(Default)]
pub struct Counters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub gaps: AtomicU64,
    /// Packets whose RTP timestamp is inside the measurement window.
    pub window_packets: AtomicU64,
    pub window_bytes: AtomicU64,
    pub rtcp: AtomicU64,
    pub other_rtp: AtomicU64,
    pub reordered: AtomicU64,
    /// Microseconds since `Shared::base` of the last H.264 packet.
    pub last_packet_us: AtomicU64,
    pub stun_requests_in: AtomicU64,
    pub dtls_dropped: AtomicU64,
}

pub struct Viewer {
    pub counters: Arc<Counters>,
    pub post_ms: f64,
    pub dtls_ms: f64,
    pub first_packet_ms: f64,
    pub srtp_profile: String,
    dtls: Arc<DTLSConn>,
    io: JoinHandle<()>,
}

#[derive(Debug)]
pub struct ConnectError {
    pub stage: &'static str,
    pub reason: String,
    pub post_ms: Option<f64>,
}

fn fail(stage: &'static str, reason: impl Into<String>, post_ms: Option<f64>) -> ConnectError {
    ConnectError {
        stage,
        reason: reason.into(),
        post_ms,
    }
}

fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

const OFFER_PT: u8 = 102;

fn offer_sdp(ufrag: &str, pwd: &str, fingerprint: &str, local: SocketAddr) -> String {
    let sid: u64 = rand::random::<u64>() >> 1;
    format!(
        "v=0\r\n\
         o=- {sid} 2 IN IP4 127.0.0.1\r\n\
         s=-\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0\r\n\
         a=extmap-allow-mixed\r\n\
         a=msid-semantic: WMS\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF {pt}\r\n\
         c=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\n\
         a=ice-pwd:{pwd}\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\n\
         a=setup:actpass\r\n\
         a=mid:0\r\n\
         a=recvonly\r\n\
         a=rtcp-mux\r\n\
         a=rtcp-rsize\r\n\
         a=rtpmap:{pt} H264/90000\r\n\
         a=rtcp-fb:{pt} nack pli\r\n\
         a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
         a=candidate:1 1 udp 2130706431 {ip} {port} typ host\r\n\
         a=end-of-candidates\r\n",
        pt = OFFER_PT,
        ip = local.ip(),
        port = local.port(),
    )
}

struct Answer {
    ufrag: String,
    pwd: String,
    candidates: Vec<SocketAddr>,
    h264_pts: Vec<u8>,
    setup: String,
}

fn parse_answer(sdp: &str) -> Answer {
    let mut a = Answer {
        ufrag: String::new(),
        pwd: String::new(),
        candidates: Vec::new(),
        h264_pts: Vec::new(),
        setup: String::new(),
    };
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            a.ufrag = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            a.pwd = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("a=setup:") {
            a.setup = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, codec)) = v.split_once(' ') {
                if codec.to_ascii_uppercase().starts_with("H264/") {
                    if let Ok(pt) = pt.parse() {
                        a.h264_pts.push(pt);
                    }
                }
            }
        } else if let Some(v) = line.strip_prefix("a=candidate:") {
            let f: Vec<&str> = v.split_whitespace().collect();
            if f.get(2).is_some_and(|t| t.eq_ignore_ascii_case("udp")) {
                if let (Some(ip), Some(port)) = (
                    f.get(4).and_then(|s| s.parse().ok()),
                    f.get(5).and_then(|s| s.parse().ok()),
                ) {
                    a.candidates.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    a
}

fn udp_socket() -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // The client must never be the one that loses packets.
    s.set_recv_buffer_size(4 << 20)?;
    s.set_nonblocking(true)?;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// POST, ICE, DTLS, first packet. Every stage is bounded.
pub async fn connect(shared: Arc<Shared>) -> Result<Viewer, ConnectError> {
    let sock = Arc::new(udp_socket().map_err(|e| fail("socket", e.to_string(), None))?);
    let local = sock
        .local_addr()
        .map_err(|e| fail("socket", e.to_string(), None))?;
    let ufrag = random_token(8);
    let pwd = random_token(24);
    let offer = offer_sdp(&ufrag, &pwd, &shared.fingerprint, local);

    let posted = Instant::now();
    let resp = shared
        .http
        .post(&shared.url)
        .header("Content-Type", "application/sdp")
        .body(offer)
        .send()
        .await
        .map_err(|e| fail("post", format!("POST failed: {e}"), None))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let post_ms = posted.elapsed().as_secs_f64() * 1e3;
    if status != 201 {
        return Err(fail(
            "post",
            format!("POST answered {status}: {}", body.trim()),
            Some(post_ms),
        ));
    }
    let answer = parse_answer(&body);
    if answer.ufrag.is_empty() || answer.pwd.is_empty() {
        return Err(fail(
            "answer",
            "no ice-ufrag/ice-pwd in the answer",
            Some(post_ms),
        ));
    }
    // Our offer says actpass: the answer decides who runs the DTLS handshake.
    let dtls_client = match answer.setup.as_str() {
        "passive" => true,
        "active" => false,
        other => {
            return Err(fail(
                "answer",
                format!("expected a=setup:passive or active in the answer, got {other:?}"),
                Some(post_ms),
            ))
        }
    };
    let Some(&h264_pt) = answer.h264_pts.first() else {
        return Err(fail("answer", "no H264 in the answer", Some(post_ms)));
    };
    let server = answer
        .candidates
        .iter()
        .copied()
        .find(|c| c.ip().is_loopback())
        .or_else(|| answer.candidates.first().copied())
        .unwrap_or(shared.server_udp);

    let counters = Arc::new(Counters::default());
    let (dtls_tx, dtls_rx) = mpsc::channel::<Vec<u8>>(64);
    let (first_tx, first_rx) = oneshot::channel::<Instant>();
    let (ice_tx, ice_rx) = oneshot::channel::<()>();
    let ice = IceCreds {
        local_ufrag: ufrag,
        local_pwd: pwd,
        remote_ufrag: answer.ufrag,
        remote_pwd: answer.pwd,
    };
    let io = tokio::spawn(io_loop(
        Arc::clone(&sock),
        server,
        ice,
        h264_pt,
        dtls_tx,
        first_tx,
        ice_tx,
        Arc::clone(&counters),
        Arc::clone(&shared),
    ));
    let conn: Arc<dyn Conn + Send + Sync> = Arc::new(DtlsAdapter {
        sock,
        remote: server,
        rx: Mutex::new(dtls_rx),
        closed: AtomicBool::new(false),
    });
    let config = DtlsConfig {
        certificates: vec![shared.cert.clone()],
        srtp_protection_profiles: vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ],
        client_auth: ClientAuthType::RequireAnyClientCert,
        extended_master_secret: ExtendedMasterSecretType::Require,
        insecure_skip_verify: true,
        ..Default::default()
    };
    // ICE first, as browsers do: the server routes DTLS by the address a check proved.
    if !matches!(
        tokio::time::timeout(Duration::from_secs(15), ice_rx).await,
        Ok(Ok(()))
    ) {
        io.abort();
        return Err(fail(
            "ice",
            "no STUN binding success from the server within 15 s",
            Some(post_ms),
        ));
    }
    let dtls = match tokio::time::timeout(
        Duration::from_secs(15),
        DTLSConn::new(conn, config, dtls_client, None),
    )
    .await
    {
        Ok(Ok(c)) => Arc::new(c),
        Ok(Err(e)) => {
            io.abort();
            return Err(fail(
                "dtls",
                format!("DTLS handshake failed: {e}"),
                Some(post_ms),
            ));
        }
        Err(_) => {
            io.abort();
            let stun = counters.stun_requests_in.load(Ordering::Relaxed);
            return Err(fail(
                "dtls",
                format!("ICE+DTLS not done within 15 s ({stun} STUN checks from the server seen)"),
                Some(post_ms),
            ));
        }
    };
    let dtls_ms = posted.elapsed().as_secs_f64() * 1e3;
    let srtp_profile = format!("{:?}", dtls.selected_srtpprotection_profile());
    let first = match tokio::time::timeout(Duration::from_secs(10), first_rx).await {
        Ok(Ok(t)) => t,
        _ => {
            let _ = tokio::time::timeout(Duration::from_secs(1), dtls.close()).await;
            io.abort();
            return Err(fail(
                "media",
                "no H.264 packet within 10 s of the DTLS handshake",
                Some(post_ms),
            ));
        }
    };
    Ok(Viewer {
        counters,
        post_ms,
        dtls_ms,
        first_packet_ms: first.duration_since(posted).as_secs_f64() * 1e3,
        srtp_profile,
        dtls,
        io,
    })
}

impl Viewer {
    /// DTLS close_notify (the server ends the session at once), then stop the I/O task.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.dtls.close()).await;
        // Drop stops the I/O task.
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.io.abort();
    }
}

struct IceCreds {
    local_ufrag: String,
    local_pwd: String,
    remote_ufrag: String,
    remote_pwd: String,
}

fn binding_request(ice: &IceCreds, tie_breaker: u64, nominate: bool) -> Option<Vec<u8>> {
    let mut m = Message::new();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(
            ATTR_USERNAME,
            format!("{}:{}", ice.remote_ufrag, ice.local_ufrag),
        )),
    ];
    if nominate {
        setters.push(Box::new(UseCandidateAttr::new()));
    }
    setters.push(Box::new(AttrControlling(tie_breaker)));
    // Host candidate priority, as in the offer.
    setters.push(Box::new(PriorityAttr(2_130_706_431)));
    setters.push(Box::new(MessageIntegrity::new_short_term_integrity(
        ice.remote_pwd.clone(),
    )));
    setters.push(Box::new(FINGERPRINT));
    m.build(&setters).ok()?;
    Some(m.raw)
}

fn binding_success(req: &Message, from: SocketAddr, ice: &IceCreds) -> Option<Vec<u8>> {
    let mut out = Message::new();
    out.build(&[
        Box::new(req.clone()),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(MessageIntegrity::new_short_term_integrity(
            ice.local_pwd.clone(),
        )),
        Box::new(FINGERPRINT),
    ])
    .ok()?;
    Some(out.raw)
}

/// Reads the socket: answers STUN, hands DTLS to the DTLS connection, counts RTP. Also sends
/// our connectivity checks (every 50 ms until one succeeds, then every 2 s as consent).
#[allow(clippy::too_many_arguments)]
async fn io_loop(
    sock: Arc<UdpSocket>,
    server: SocketAddr,
    ice: IceCreds,
    h264_pt: u8,
    dtls_tx: mpsc::Sender<Vec<u8>>,
    first_tx: oneshot::Sender<Instant>,
    ice_tx: oneshot::Sender<()>,
    c: Arc<Counters>,
    shared: Arc<Shared>,
) {
    let tie_breaker: u64 = rand::random();
    let mut first_tx = Some(first_tx);
    let mut ice_tx = Some(ice_tx);
    let mut ice_ok = false;
    let mut last_seq: Option<u16> = None;
    let mut buf = vec![0u8; 4096];
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let window = &shared.window;
    loop {
        let (n, from) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut timer => {
                if let Some(req) = binding_request(&ice, tie_breaker, true) {
                    let _ = sock.send_to(&req, server).await;
                }
                let next = if ice_ok { Duration::from_secs(2) } else { Duration::from_millis(50) };
                timer.as_mut().reset(tokio::time::Instant::now() + next);
                continue;
            }
        };
        // Handle this datagram and whatever else is already queued, without going back to
        // the scheduler for each.
        let mut pending = Some((n, from));
        let mut batch = 0;
        while let Some((n, from)) = pending.take() {
            let pkt = &buf[..n];
            match pkt.first().copied().unwrap_or(255) {
                128..=191 if n >= 12 => {
                    let b1 = pkt[1];
                    if (192..=223).contains(&b1) {
                        c.rtcp.fetch_add(1, Ordering::Relaxed);
                    } else if b1 & 0x7f == h264_pt {
                        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
                        if let Some(last) = last_seq {
                            let gap = seq.wrapping_sub(last).wrapping_sub(1);
                            if gap == 0 {
                                last_seq = Some(seq);
                            } else if gap < 0x8000 {
                                c.gaps.fetch_add(u64::from(gap), Ordering::Relaxed);
                                last_seq = Some(seq);
                            } else {
                                // Behind the newest: reordered or duplicate.
                                c.reordered.fetch_add(1, Ordering::Relaxed);
                            }
                        } else {
                            last_seq = Some(seq);
                        }
                        c.packets.fetch_add(1, Ordering::Relaxed);
                        c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if window.contains(ts) {
                            c.window_packets.fetch_add(1, Ordering::Relaxed);
                            c.window_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let now = Instant::now();
                        c.last_packet_us.store(
                            now.duration_since(shared.base).as_micros() as u64,
                            Ordering::Relaxed,
                        );
                        if let Some(tx) = first_tx.take() {
                            let _ = tx.send(now);
                        }
                    } else {
                        c.other_rtp.fetch_add(1, Ordering::Relaxed);
                    }
                }
                20..=63 if dtls_tx.try_send(pkt.to_vec()).is_err() => {
                    c.dtls_dropped.fetch_add(1, Ordering::Relaxed);
                }
                20..=63 => {}
                0..=3 => {
                    let mut m = Message::new();
                    if m.unmarshal_binary(pkt).is_ok() {
                        if m.typ == BINDING_REQUEST {
                            c.stun_requests_in.fetch_add(1, Ordering::Relaxed);
                            if let Some(resp) = binding_success(&m, from, &ice) {
                                let _ = sock.send_to(&resp, from).await;
                            }
                        } else if m.typ == BINDING_SUCCESS && !ice_ok {
                            ice_ok = true;
                            if let Some(tx) = ice_tx.take() {
                                let _ = tx.send(());
                            }
                            timer
                                .as_mut()
                                .reset(tokio::time::Instant::now() + Duration::from_secs(2));
                        }
                    }
                }
                _ => {}
            }
            batch += 1;
            if batch < 64 {
                if let Ok(v) = sock.try_recv_from(&mut buf) {
                    pending = Some(v);
                }
            }
        }
    }
}

/// The viewer's UDP socket as the DTLS stack sees it: DTLS records only, to and from the
/// server's candidate.
struct DtlsAdapter {
    sock: Arc<UdpSocket>,
    remote: SocketAddr,
    rx: Mutex<mpsc::Receiver<Vec<u8>>>,
    closed: AtomicBool,
}

#[async_trait::async_trait]
impl Conn for DtlsAdapter {
    async fn connect(&self, _addr: SocketAddr) -> webrtc::util::Result<()> {
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        if self.closed.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(webrtc::util::Error::ErrUseClosedNetworkConn);
        }
        match self.rx.lock().await.recv().await {
            Some(p) => {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                Ok(n)
            }
            None => {
                // The DTLS reader retries on errors: do not let it spin until it is dropped.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(webrtc::util::Error::ErrUseClosedNetworkConn)
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        let n = self.recv(buf).await?;
        Ok((n, self.remote))
    }

    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        Ok(self.sock.send_to(buf, self.remote).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc::util::Result<usize> {
        Ok(self.sock.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.remote)
    }

    async fn close(&self) -> webrtc::util::Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
