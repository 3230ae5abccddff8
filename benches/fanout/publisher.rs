//! The camera: an H.264 file encoded once by ffmpeg, replayed in-process as RTP over RTSP/TCP
//! (ANNOUNCE, SETUP interleaved, RECORD) at 30 fps, looping. Encoding live would put x264 on
//! the same two cores as the server; replaying makes the numbers about the server.
//!
//! The sender also runs hubcast's own `Reframer` over what it pushes, so it knows exactly how
//! many packets the server emits per access unit: that is the "expected" count per viewer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hubcast::codec::h264::{OutPacket, ParamSets, Reframer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const FPS: u32 = 30;
pub const TS_PER_FRAME: u32 = 90_000 / FPS;
/// Camera-side RTP payload size: larger NALs go as FU-A.
pub const PAYLOAD: usize = 1400;
pub const PT: u8 = 96;

/// One access unit of the file.
pub struct Au {
    pub nals: Vec<Bytes>,
    pub idr: bool,
}

pub struct Source {
    pub aus: Vec<Au>,
    pub sps: Bytes,
    pub pps: Bytes,
    pub path: PathBuf,
    pub bytes: usize,
}

/// Encodes (once; the file is kept in `out_dir`) 10 s of 720p30 H.264 baseline at `bitrate`.
/// `testsrc2` rather than `testsrc`: its moving content actually reaches ~2 Mbit/s, while
/// testsrc's flat pattern stays near 1.5.
pub fn prepare(out_dir: &Path, bitrate: &str) -> Result<Source, String> {
    let path = out_dir.join(format!("fanout-src-720p30-{bitrate}.h264"));
    if !path.exists() {
        let tmp = path.with_extension("h264.part");
        let status = Command::new("ffmpeg")
            .args(["-y", "-hide_banner", "-loglevel", "error"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
                "-t",
                "10",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args([
                "-profile:v",
                "baseline",
                "-bf",
                "0",
                "-g",
                "30",
                "-keyint_min",
                "30",
            ])
            .args(["-sc_threshold", "0", "-b:v", bitrate, "-maxrate", bitrate])
            .args(["-bufsize", "1M", "-pix_fmt", "yuv420p", "-f", "h264"])
            .arg(&tmp)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run ffmpeg (apt-get install ffmpeg): {e}"))?;
        if !status.success() {
            return Err(format!("ffmpeg failed to encode the source ({status})"));
        }
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let source = parse_annexb(&data, path)?;
    Ok(source)
}

fn split_nals(data: &[u8]) -> Vec<Bytes> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        // A 4-byte start code leaves one zero behind; trailing zeros are not NAL data.
        while e > s && data[e - 1] == 0 {
            e -= 1;
        }
        if e > s {
            out.push(Bytes::copy_from_slice(&data[s..e]));
        }
    }
    out
}

fn parse_annexb(data: &[u8], path: PathBuf) -> Result<Source, String> {
    let mut aus: Vec<Au> = Vec::new();
    let mut cur: Vec<Bytes> = Vec::new();
    let mut cur_has_slice = false;
    let (mut sps, mut pps) = (None, None);
    let flush = |cur: &mut Vec<Bytes>, aus: &mut Vec<Au>| {
        if cur.iter().any(|n| matches!(n[0] & 0x1f, 1 | 5)) {
            let idr = cur.iter().any(|n| n[0] & 0x1f == 5);
            aus.push(Au {
                nals: std::mem::take(cur),
                idr,
            });
        }
        cur.clear();
    };
    for nal in split_nals(data) {
        let t = nal[0] & 0x1f;
        let starts_au = match t {
            // first_mb_in_slice == 0 (ue(v) "1"): the first slice of a picture.
            1 | 5 => nal.len() > 1 && nal[1] & 0x80 != 0,
            6..=9 => true,
            _ => false,
        };
        if starts_au && cur_has_slice {
            flush(&mut cur, &mut aus);
            cur_has_slice = false;
        }
        match t {
            7 => {
                sps.get_or_insert_with(|| nal.clone());
                cur.push(nal);
            }
            8 => {
                pps.get_or_insert_with(|| nal.clone());
                cur.push(nal);
            }
            // SEI (x264's banner) and AUD are not needed.
            6 | 9 => {}
            1 | 5 => {
                cur_has_slice = true;
                cur.push(nal);
            }
            _ => cur.push(nal),
        }
    }
    flush(&mut cur, &mut aus);
    let sps = sps.ok_or("the source has no SPS")?;
    let pps = pps.ok_or("the source has no PPS")?;
    // SPS/PPS in front of every IDR, and nowhere else.
    for au in &mut aus {
        au.nals.retain(|n| !matches!(n[0] & 0x1f, 7 | 8));
        if au.idr {
            au.nals.splice(0..0, [sps.clone(), pps.clone()]);
        }
    }
    if aus.first().is_none_or(|a| !a.idr) {
        return Err("the source does not start with an IDR".into());
    }
    Ok(Source {
        bytes: aus
            .iter()
            .flat_map(|a| a.nals.iter())
            .map(|n| n.len())
            .sum(),
        aus,
        sps,
        pps,
        path,
    })
}

impl Source {
    pub fn sprop(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!("{},{}", b64.encode(&self.sps), b64.encode(&self.pps))
    }

    pub fn profile_level_id(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.sps[1], self.sps[2], self.sps[3])
    }

    pub fn bitrate_bps(&self) -> f64 {
        self.bytes as f64 * 8.0 * f64::from(FPS) / self.aus.len().max(1) as f64
    }
}

/// RTP payloads of one AU: SPS+PPS in a STAP-A, single NALs up to PAYLOAD, FU-A above.
fn packetize(nals: &[Bytes]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    if nals.len() >= 2 && nals[0][0] & 0x1f == 7 && nals[1][0] & 0x1f == 8 {
        let nri = (nals[0][0] | nals[1][0]) & 0x60;
        let mut p = vec![nri | 24];
        for n in &nals[..2] {
            p.extend_from_slice(&(n.len() as u16).to_be_bytes());
            p.extend_from_slice(n);
        }
        out.push(p);
        i = 2;
    }
    for nal in &nals[i..] {
        if nal.len() <= PAYLOAD {
            out.push(nal.to_vec());
            continue;
        }
        let indicator = (nal[0] & 0xe0) | 28;
        let typ = nal[0] & 0x1f;
        let body = &nal[1..];
        let chunks: Vec<&[u8]> = body.chunks(PAYLOAD - 2).collect();
        let last = chunks.len() - 1;
        for (k, c) in chunks.into_iter().enumerate() {
            let mut header = typ;
            if k == 0 {
                header |= 0x80;
            }
            if k == last {
                header |= 0x40;
            }
            let mut p = Vec::with_capacity(c.len() + 2);
            p.push(indicator);
            p.push(header);
            p.extend_from_slice(c);
            out.push(p);
        }
    }
    out
}

/// The measurement window in RTP timestamps (the server keeps a publisher's timestamps).
/// `span == 0`: no window yet; viewers count packets with `ts - t0 < span`.
#[derive(Default)]
pub struct Window {
    pub t0: AtomicU32,
    pub span: AtomicU32,
}

impl Window {
    #[inline]
    pub fn contains(&self, ts: u32) -> bool {
        let span = self.span.load(Ordering::Acquire);
        span != 0 && ts.wrapping_sub(self.t0.load(Ordering::Relaxed)) < span
    }
}

#[derive(Default)]
pub struct PubStats {
    pub aus: AtomicU64,
    pub rtp_packets: AtomicU64,
    pub rtp_bytes: AtomicU64,
    /// What the server emits per viewer for what we pushed (hubcast's Reframer, run here).
    pub server_packets: AtomicU64,
    /// Frames sent later than 10 ms after their slot (the harness was starved).
    pub late_frames: AtomicU64,
    pub recording: AtomicBool,
    pub error: Mutex<Option<String>>,
}

/// Asks the sender to open/close the window at the next AU boundary.
#[derive(Default)]
pub struct WindowCtl {
    pub open_req: AtomicBool,
    pub close_req: AtomicBool,
    /// (server packets before the first AU in the window, before the first AU after it)
    pub expected: Mutex<(Option<u64>, Option<u64>)>,
}

pub struct Publisher {
    pub stats: Arc<PubStats>,
    pub ctl: Arc<WindowCtl>,
    pub window: Arc<Window>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// Starts the sender on its own thread (its own runtime: the viewers' load must not
    /// delay frames).
    pub fn start(source: Arc<Source>, rtsp: std::net::SocketAddr, path: &str) -> Publisher {
        let stats = Arc::new(PubStats::default());
        let ctl = Arc::new(WindowCtl::default());
        let window = Arc::new(Window::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, c, w, st) = (
            Arc::clone(&stats),
            Arc::clone(&ctl),
            Arc::clone(&window),
            Arc::clone(&stop),
        );
        let path = path.to_string();
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        *s.error.lock().unwrap() = Some(format!("runtime: {e}"));
                        return;
                    }
                };
                let res = rt.block_on(run(source, rtsp, &path, &s, &c, &w, &st));
                if let Err(e) = res {
                    *s.error.lock().unwrap() = Some(e);
                }
            })
            .expect("publisher thread");
        Publisher {
            stats,
            ctl,
            window,
            stop,
            thread: Some(thread),
        }
    }

    pub fn error(&self) -> Option<String> {
        self.stats.error.lock().unwrap().clone()
    }

    /// Waits (bounded) until RECORD succeeded and a couple of frames went out.
    pub fn wait_recording(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(e) = self.error() {
                return Err(e);
            }
            if self.stats.recording.load(Ordering::Acquire)
                && self.stats.aus.load(Ordering::Relaxed) >= 3
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "the publisher was not recording within {timeout:?}"
        ))
    }

    /// Opens the window at the next AU and waits until it is open.
    pub async fn open_window(&self) -> Result<(), String> {
        self.ctl.open_req.store(true, Ordering::Release);
        self.wait_ctl(|e| e.0.is_some()).await
    }

    pub async fn close_window(&self) -> Result<(), String> {
        self.ctl.close_req.store(true, Ordering::Release);
        self.wait_ctl(|e| e.1.is_some()).await
    }

    async fn wait_ctl(
        &self,
        done: impl Fn(&(Option<u64>, Option<u64>)) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if done(&self.ctl.expected.lock().unwrap()) {
                return Ok(());
            }
            if let Some(e) = self.error() {
                return Err(e);
            }
            if Instant::now() > deadline {
                return Err("the publisher did not reach the next frame within 2 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Packets per viewer the server should have sent for the AUs in the window.
    pub fn expected_per_viewer(&self) -> Option<u64> {
        let e = self.ctl.expected.lock().unwrap();
        Some(e.1? - e.0?)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(
    source: Arc<Source>,
    rtsp: std::net::SocketAddr,
    path: &str,
    stats: &PubStats,
    ctl: &WindowCtl,
    window: &Window,
    stop: &AtomicBool,
) -> Result<(), String> {
    let url = format!("rtsp://{rtsp}/{path}");
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(rtsp))
        .await
        .map_err(|_| "RTSP connect timed out".to_string())?
        .map_err(|e| format!("RTSP connect: {e}"))?;
    stream.set_nodelay(true).ok();
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hubcast-bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video 0 RTP/AVP {PT}\r\na=rtpmap:{PT} H264/90000\r\n\
         a=fmtp:{PT} packetization-mode=1;profile-level-id={};sprop-parameter-sets={}\r\n\
         a=control:trackID=0\r\n",
        source.profile_level_id(),
        source.sprop()
    );
    let mut rtsp_client = RtspClient {
        stream: &mut stream,
        cseq: 0,
        session: None,
    };
    rtsp_client
        .request(
            "ANNOUNCE",
            &url,
            &[("Content-Type", "application/sdp")],
            &sdp,
        )
        .await?;
    rtsp_client
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[(
                "Transport",
                "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            )],
            "",
        )
        .await?;
    rtsp_client.request("RECORD", &url, &[], "").await?;
    stats.recording.store(true, Ordering::Release);

    let (mut rd, mut wr) = stream.into_split();
    // Whatever the server sends (RTCP receiver reports) is read and dropped.
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });

    let params = ParamSets::from_sprop(&source.sprop()).map_err(|e| format!("sprop: {e}"))?;
    let mut reframer = Reframer::new(params);
    let mut reframed: Vec<OutPacket> = Vec::new();
    let packetized: Vec<Vec<Vec<u8>>> = source.aus.iter().map(|a| packetize(&a.nals)).collect();
    let ssrc: u32 = rand::random();
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let start = Instant::now();
    let frame = Duration::from_secs(1) / FPS;
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut server_packets = 0u64;
    let mut k: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let due = start + frame * k as u32;
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due.into()).await;
        } else if now - due > Duration::from_millis(10) {
            stats.late_frames.fetch_add(1, Ordering::Relaxed);
        }
        // Window edges fall on AU boundaries: every packet of an AU is in or out.
        if ctl.open_req.swap(false, Ordering::AcqRel) {
            window.t0.store(ts, Ordering::Relaxed);
            window.span.store(0x8000_0000, Ordering::Release);
            ctl.expected.lock().unwrap().0 = Some(server_packets);
        }
        if ctl.close_req.swap(false, Ordering::AcqRel) {
            let t0 = window.t0.load(Ordering::Relaxed);
            window
                .span
                .store(ts.wrapping_sub(t0).max(1), Ordering::Release);
            ctl.expected.lock().unwrap().1 = Some(server_packets);
        }
        let payloads = &packetized[(k % packetized.len() as u64) as usize];
        buf.clear();
        let last = payloads.len() - 1;
        for (i, p) in payloads.iter().enumerate() {
            let marker = i == last;
            let len = 12 + p.len();
            buf.push(b'$');
            buf.push(0);
            buf.extend_from_slice(&(len as u16).to_be_bytes());
            let start_hdr = buf.len();
            buf.push(0x80);
            buf.push(if marker { 0x80 | PT } else { PT });
            buf.extend_from_slice(&seq.to_be_bytes());
            buf.extend_from_slice(&ts.to_be_bytes());
            buf.extend_from_slice(&ssrc.to_be_bytes());
            buf.extend_from_slice(p);
            let payload = Bytes::copy_from_slice(&buf[start_hdr + 12..]);
            reframed.clear();
            let _ = reframer.push_rtp_as_packets(seq, ts, marker, &payload, &mut reframed);
            server_packets += reframed.len() as u64;
            seq = seq.wrapping_add(1);
            stats.rtp_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        match tokio::time::timeout(Duration::from_secs(5), wr.write_all(&buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                drain.abort();
                return Err(format!("RTSP write failed: {e}"));
            }
            Err(_) => {
                drain.abort();
                return Err("RTSP write blocked for 5 s (the server stopped reading)".into());
            }
        }
        stats
            .rtp_packets
            .fetch_add(payloads.len() as u64, Ordering::Relaxed);
        stats
            .server_packets
            .store(server_packets, Ordering::Relaxed);
        stats.aus.fetch_add(1, Ordering::Relaxed);
        ts = ts.wrapping_add(TS_PER_FRAME);
        k += 1;
    }
    drain.abort();
    Ok(())
}

struct RtspClient<'a> {
    stream: &'a mut TcpStream,
    cseq: u32,
    session: Option<String>,
}

impl RtspClient<'_> {
    async fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<String, String> {
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
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("RTSP {method}: {e}"))?;
        let resp = read_response(self.stream).await;
        if let Some(s) = resp
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("session").then_some(v)
            })
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        {
            self.session = Some(s);
        }
        let status: u16 = resp
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != 200 {
            return Err(format!(
                "RTSP {method} {url} refused (status {status}): {}",
                resp.lines().next().unwrap_or("no response")
            ));
        }
        Ok(resp)
    }
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
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
