//! RTSP readers (DESCRIBE/SETUP/PLAY): any ready path, whatever its source, read back over
//! RTSP by VLC, ffmpeg, NVRs or an edge hubcast.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

use crate::codec::frame::RtpPayload;
use crate::codec::sdp::MediaDesc;
use crate::path::{Packet, Reader, RtpFormat, Track};

/// Payload types in our DESCRIBE: static ones where the codec has one, else 96 for video
/// and 97 for audio.
pub fn payload_type(track: &Track) -> u8 {
    crate::codec::sdp_for_track(track, dynamic_payload_type(track)).payload_type
}

fn dynamic_payload_type(track: &Track) -> u8 {
    if track.is_video() {
        96
    } else {
        97
    }
}

/// The medias of a DESCRIBE answer for a hub's tracks (control `trackID=<index>`).
pub fn describe_medias(tracks: &[Track]) -> Vec<MediaDesc> {
    tracks
        .iter()
        .map(|t| crate::codec::sdp_for_track(t, dynamic_payload_type(t)))
        .collect()
}

/// Where one track goes.
#[derive(Debug, Clone, Copy)]
pub enum PlayTarget {
    Tcp { channel: u8 },
    Udp { rtp: SocketAddr },
}

/// Per-track RTP state of one reader.
#[derive(Debug, Clone, Copy)]
pub struct PlayTrack {
    pub target: PlayTarget,
    pub ssrc: u32,
    pub seq: u16,
    pub payload_type: u8,
}

/// Feeds one RTSP reader until the stream ends or the connection breaks. A stalled TCP
/// reader blocks only here: its hub queue overflows and the hub drops for it alone.
pub async fn run(mut reader: Reader, mut tracks: Vec<Option<PlayTrack>>, out: Out) -> String {
    // One reusable buffer: no allocation per packet.
    let mut buf = BytesMut::with_capacity(2048);
    let gop = std::mem::take(&mut reader.gop);
    for pkt in &gop {
        if let Err(e) = send(pkt, &mut tracks, &mut buf, &out).await {
            return e;
        }
    }
    drop(gop);
    while let Some(pkt) = reader.recv().await {
        if let Err(e) = send(&pkt, &mut tracks, &mut buf, &out).await {
            return e;
        }
    }
    "stream ended".into()
}

/// Where a reader's packets go, and the connection's counters.
pub struct Out {
    pub tcp: Option<Arc<Mutex<OwnedWriteHalf>>>,
    pub udp: Option<Arc<UdpSocket>>,
    pub write_timeout: Duration,
    pub info: Arc<super::server::ConnInfo>,
}

async fn send(
    unit: &Packet,
    tracks: &mut [Option<PlayTrack>],
    buf: &mut BytesMut,
    out: &Out,
) -> Result<(), String> {
    let Some(Some(t)) = tracks.get_mut(unit.track as usize) else {
        return Ok(());
    };
    let timestamp = unit.rtp_timestamp();
    for p in unit.rtp(RtpFormat::Rtsp) {
        send_one(t, timestamp, p, buf, out).await?;
    }
    Ok(())
}

async fn send_one(
    t: &mut PlayTrack,
    timestamp: u32,
    pkt: &RtpPayload,
    buf: &mut BytesMut,
    out: &Out,
) -> Result<(), String> {
    buf.clear();
    let rtp_len = 12 + pkt.payload.len();
    if let PlayTarget::Tcp { channel } = t.target {
        buf.put_u8(b'$');
        buf.put_u8(channel);
        buf.put_u16(rtp_len as u16);
    }
    buf.put_u8(0x80);
    buf.put_u8(if pkt.marker { 0x80 } else { 0 } | t.payload_type);
    buf.put_u16(t.seq);
    buf.put_u32(timestamp);
    buf.put_u32(t.ssrc);
    buf.put_slice(&pkt.payload);
    t.seq = t.seq.wrapping_add(1);
    out.info
        .bytes_sent
        .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
    match (t.target, &out.tcp, &out.udp) {
        (PlayTarget::Tcp { .. }, Some(w), _) => {
            let write = async { w.lock().await.write_all(buf).await };
            match tokio::time::timeout(out.write_timeout, write).await {
                Ok(r) => r.map_err(|e| format!("write failed: {e}")),
                Err(_) => Err(format!(
                    "reader stalled: nothing written for writeTimeout ({:?})",
                    out.write_timeout
                )),
            }
        }
        (PlayTarget::Udp { rtp }, _, Some(sock)) => {
            // UDP readers may come and go; a failed send is not worth ending the session.
            let _ = sock.send_to(buf, rtp).await;
            Ok(())
        }
        _ => Ok(()),
    }
}
