//! Turns a source's RTP into units: H.264 from cameras is reassembled into access units
//! (and packetized later, once per kind of reader), H.264 from WebRTC publishers passes
//! through packet by packet, audio frames pass through as they are. Timestamps are extended
//! to 64 bits here, and given wall-clock time from the source's RTCP sender reports.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::hub::{Codec, Hub};
use super::passthrough::FramePassthrough;
use super::unit::{Payloads, Unit};
use crate::codec::frame::{Frame, Packetizer, RtpPayload};
use crate::codec::h264::passthrough::H264Passthrough;
use crate::codec::h264::{
    AccessUnit, DtsExtractor, H264Error, OutPacket, ParamSets, Reframer, Sps,
};
use crate::codec::mpeg4audio::{self, generic, latm, Mpeg4AudioError};
use crate::codec::nal::{self, NalCodec};
use crate::codec::{h265, mpa, FrameError};
use crate::media::rtcp::{self, RtcpItem};
use crate::media::rtp::{self, RtpPacket};

enum TrackIngest {
    // Boxed: the H.264 state would otherwise make every audio track as large.
    H264(Box<H264Reframe>),
    H264Passthrough(Box<H264Passthrough>),
    H265(Box<H265Reframe>),
    /// Audio whose every packet is a frame (Opus, G.711, G.722, LPCM, MPEG audio): passed
    /// through as it is, once `check` finds it readable.
    Frames {
        check: fn(&[u8]) -> Result<(), FrameError>,
    },
    /// AAC: packets in, access units out, each its own unit.
    Mpeg4Audio(Box<AacIngest>),
    /// VP8, VP9, AV1: passed through packet by packet.
    Video(FramePassthrough),
}

/// A camera's H.264: access units, with decoding times read from their picture order.
struct H264Reframe {
    reframer: Reframer,
    dts: DtsExtractor,
    sps: Option<Sps>,
}

impl H264Reframe {
    fn new(params: &ParamSets) -> Self {
        H264Reframe {
            sps: params.sps.as_deref().and_then(Sps::parse),
            reframer: Reframer::new(params.clone()),
            dts: DtsExtractor::new(),
        }
    }
}

/// A camera's H.265, the same way.
struct H265Reframe {
    reframer: h265::Reframer,
    dts: DtsExtractor,
    sps: Option<h265::Sps>,
    pps: Option<h265::Pps>,
    /// No picture was read yet (a CRA first starts the POC anew).
    first: bool,
}

impl H265Reframe {
    fn new(params: &h265::ParamSets) -> Self {
        let mut r = H265Reframe {
            reframer: h265::Reframer::new(params.clone()),
            dts: DtsExtractor::new(),
            sps: None,
            pps: None,
            first: true,
        };
        r.learn(params);
        r
    }

    fn learn(&mut self, params: &h265::ParamSets) {
        self.sps = params.sps.as_deref().and_then(h265::Sps::parse);
        self.pps = params.pps.as_deref().and_then(h265::Pps::parse);
    }
}

/// The two AAC packings, read into access units.
enum AacDepacketizer {
    Generic(generic::Depacketizer),
    Latm(latm::Depacketizer),
}

struct AacIngest {
    depacketizer: AacDepacketizer,
    /// RTP ticks from one access unit to the next.
    ticks_per_au: u32,
    last_seq: Option<u16>,
    aus: Vec<Bytes>,
}

impl AacIngest {
    fn new(audio: &mpeg4audio::Mpeg4Audio, clock_rate: u32) -> Self {
        let depacketizer = match &audio.packing {
            mpeg4audio::Packing::Generic(h) => {
                AacDepacketizer::Generic(generic::Depacketizer::new(*h))
            }
            mpeg4audio::Packing::Latm { sub_frames, .. } => {
                AacDepacketizer::Latm(latm::Depacketizer::new(*sub_frames))
            }
        };
        AacIngest {
            depacketizer,
            ticks_per_au: audio.ticks_per_au(clock_rate),
            last_seq: None,
            aus: Vec::new(),
        }
    }

    /// The access units complete at this packet, in `self.aus`.
    fn push(&mut self, pkt: &RtpPacket) -> Result<(), Mpeg4AudioError> {
        self.aus.clear();
        // A lost packet may have held part of a fragmented access unit.
        let gap = self
            .last_seq
            .is_some_and(|s| pkt.sequence != s.wrapping_add(1));
        self.last_seq = Some(pkt.sequence);
        match &mut self.depacketizer {
            AacDepacketizer::Generic(d) => {
                if gap {
                    d.reset();
                }
                d.push(&pkt.payload, pkt.marker, &mut self.aus)
            }
            AacDepacketizer::Latm(d) => {
                if gap {
                    d.reset();
                }
                d.push(&pkt.payload, pkt.marker, &mut self.aus)
            }
        }
    }
}

fn any_frame(payload: &[u8]) -> Result<(), FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(())
}

fn mpa_frame(payload: &[u8]) -> Result<(), FrameError> {
    mpa::starts_frame(payload)?;
    Ok(())
}

/// How H.264 from this publisher is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Mode {
    /// Cameras: any packetization in, access units out.
    Reframe,
    /// WebRTC publishers: packets already fit and pass as they are.
    Passthrough,
}

/// Extends 32-bit RTP timestamps to a 64-bit count that never wraps.
#[derive(Debug, Default, Clone, Copy)]
struct Extender {
    last: Option<(u32, i64)>,
}

impl Extender {
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            // Reordered packets step back by a little: a signed difference covers both.
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
            None => i64::from(ts),
        };
        self.last = Some((ts, ext));
        ext
    }
}

/// The last sender report of a track: one instant on both clocks.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    rtp_time: u32,
    ntp: u64,
}

impl WallClock {
    /// The NTP time of RTP timestamp `ts` on a `clock_rate` clock.
    fn at(&self, ts: u32, clock_rate: u32) -> Option<u64> {
        if clock_rate == 0 {
            return None;
        }
        let ticks = i128::from(ts.wrapping_sub(self.rtp_time) as i32);
        let delta = (ticks << 32) / i128::from(clock_rate);
        u64::try_from(i128::from(self.ntp) + delta).ok()
    }
}

struct TrackState {
    hub_track: u8,
    clock_rate: u32,
    packetizer: Packetizer,
    ingest: TrackIngest,
    pts: Extender,
    ssrc: Option<u32>,
    wall: Option<WallClock>,
    warned_b_frames: bool,
}

impl TrackState {
    /// A packet passed on as it came, as a unit (with the frame it is, if it is one).
    fn received_unit(&mut self, o: OutPacket, frame: Option<Frame>) -> Unit {
        let pts = self.pts.extend(o.timestamp);
        let received = Payloads::One(RtpPayload {
            payload: o.payload,
            marker: o.marker,
        });
        let mut unit = Unit::received(
            self.hub_track,
            pts,
            o.keyframe,
            o.au_start,
            received,
            frame,
            self.packetizer,
        );
        unit.ntp = self.ntp_at(o.timestamp);
        unit
    }

    fn ntp_at(&self, timestamp: u32) -> Option<u64> {
        self.wall.and_then(|w| w.at(timestamp, self.clock_rate))
    }
}

/// A received packet, to pass on as it is.
fn as_is(pkt: &RtpPacket, au_start: bool, keyframe: bool) -> OutPacket {
    OutPacket {
        payload: pkt.payload.clone(),
        timestamp: pkt.timestamp,
        marker: pkt.marker,
        au_start,
        keyframe,
    }
}

/// One publisher's input side. Media indexes are the publisher's own (e.g. SDP order).
pub struct Ingest {
    hub: Arc<Hub>,
    /// media index -> state of the hub track it feeds
    tracks: Vec<Option<TrackState>>,
    packets: Vec<OutPacket>,
    aus: Vec<AccessUnit>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rtp(#[from] rtp::RtpError),
    #[error(transparent)]
    H264(#[from] H264Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Mpeg4Audio(#[from] Mpeg4AudioError),
}

impl Ingest {
    /// `media_to_track[i]` is the hub track of the publisher's media `i`, if it is taken.
    pub fn new(hub: Arc<Hub>, media_to_track: &[Option<u8>], mode: H264Mode) -> Self {
        let tracks = hub.tracks();
        let state = media_to_track
            .iter()
            .map(|t| {
                let idx = (*t)?;
                let track = tracks.get(idx as usize)?;
                let ingest = match (&track.codec, mode) {
                    (Codec::H264(params), H264Mode::Reframe) => {
                        TrackIngest::H264(Box::new(H264Reframe::new(params)))
                    }
                    (Codec::H264(_), H264Mode::Passthrough) => {
                        TrackIngest::H264Passthrough(Box::default())
                    }
                    (Codec::H265(params), _) => {
                        TrackIngest::H265(Box::new(H265Reframe::new(params)))
                    }
                    (Codec::Mpeg4Audio(audio), _) => {
                        TrackIngest::Mpeg4Audio(Box::new(AacIngest::new(audio, track.clock_rate)))
                    }
                    (Codec::Mpa, _) => TrackIngest::Frames { check: mpa_frame },
                    (Codec::Opus { .. } | Codec::G711(_) | Codec::G722 | Codec::Lpcm { .. }, _) => {
                        TrackIngest::Frames { check: any_frame }
                    }
                    (Codec::Vp8 | Codec::Vp9 | Codec::Av1, _) => {
                        TrackIngest::Video(FramePassthrough::new(track.keyframe_detector()?))
                    }
                };
                Some(TrackState {
                    hub_track: idx,
                    clock_rate: track.clock_rate,
                    packetizer: track.packetizer(),
                    ingest,
                    pts: Extender::default(),
                    ssrc: None,
                    wall: None,
                    warned_b_frames: false,
                })
            })
            .collect();
        Ingest {
            hub,
            tracks: state,
            packets: Vec::with_capacity(64),
            aus: Vec::with_capacity(4),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// One RTP packet of media `media`, as received. Broken packets are counted and
    /// dropped; the error says why (the caller may log it).
    pub fn push_rtp(&mut self, media: usize, data: &Bytes) -> Result<(), IngestError> {
        if !matches!(self.tracks.get(media), Some(Some(_))) {
            return Ok(());
        }
        match rtp::parse(data) {
            Ok(p) => self.push_packet(media, &p),
            Err(e) => {
                self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// RTCP from the source: sender reports give the wall-clock time of the tracks whose
    /// SSRC they name. Anything else, and anything broken, is ignored.
    pub fn push_rtcp(&mut self, data: &[u8]) {
        let tracks = &mut self.tracks;
        let _ = rtcp::walk(data, |item| {
            if let RtcpItem::SenderReport {
                ssrc,
                ntp,
                rtp_time,
            } = item
            {
                for t in tracks.iter_mut().flatten() {
                    if t.ssrc == Some(ssrc) {
                        t.wall = Some(WallClock { rtp_time, ntp });
                    }
                }
            }
        });
    }

    /// One RTP packet already parsed (e.g. by a WebRTC stack).
    pub fn push_packet(&mut self, media: usize, pkt: &RtpPacket) -> Result<(), IngestError> {
        let Some(Some(t)) = self.tracks.get_mut(media) else {
            return Ok(());
        };
        t.ssrc = Some(pkt.ssrc);
        let track = t.hub_track;
        self.packets.clear();
        self.aus.clear();
        let res = match &mut t.ingest {
            TrackIngest::Frames { check } => {
                if let Err(e) = check(&pkt.payload) {
                    self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
                    return Err(e.into());
                }
                let frame = Some(Frame::Whole(pkt.payload.clone()));
                self.hub
                    .write(t.received_unit(as_is(pkt, true, false), frame));
                return Ok(());
            }
            TrackIngest::Video(v) => {
                let marks = match v.push(pkt.sequence, pkt.timestamp, pkt.marker, &pkt.payload) {
                    Ok(m) => m,
                    Err(e) => {
                        self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
                        self.hub.request_keyframe();
                        return Err(e.into());
                    }
                };
                if marks.loss {
                    self.hub.request_keyframe();
                }
                let packet = as_is(pkt, marks.au_start, marks.keyframe);
                self.hub.write(t.received_unit(packet, None));
                return Ok(());
            }
            TrackIngest::H264(h) => {
                let r = &mut h.reframer;
                let res = reframe(r, pkt, &mut self.aus);
                if r.take_params_changed() {
                    h.sps = r.params().sps.as_deref().and_then(Sps::parse);
                    params_changed(&self.hub, track, r.params().clone());
                }
                if r.has_b_frames() && !std::mem::replace(&mut t.warned_b_frames, true) {
                    warn!(
                        path = self.hub.path(),
                        "H.264 with B-frames: WebRTC readers get it as it is, and browsers show \
                         artefacts on reordered frames; set the encoder to no B-frames \
                         (x264: -bf 0, or the baseline profile)"
                    );
                }
                res
            }
            TrackIngest::Mpeg4Audio(a) => {
                let res = a.push(pkt);
                let base = t.pts.extend(pkt.timestamp);
                for (i, au) in a.aus.drain(..).enumerate() {
                    let offset = i as u32 * a.ticks_per_au;
                    let mut unit = Unit::frame(
                        track,
                        base + i64::from(offset),
                        false,
                        Frame::Whole(au),
                        t.packetizer,
                    );
                    let ts = pkt.timestamp.wrapping_add(offset);
                    unit.ntp = t.wall.and_then(|w| w.at(ts, t.clock_rate));
                    self.hub.write(unit);
                }
                if res.is_err() {
                    self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(res?);
            }
            TrackIngest::H265(h) => {
                let res = reframe(&mut h.reframer, pkt, &mut self.aus);
                if h.reframer.take_params_changed() {
                    debug!(path = self.hub.path(), "H.265 parameters changed in-band");
                    let params = h.reframer.params().clone();
                    h.learn(&params);
                    self.hub
                        .update_track(track as usize, super::Track::h265(params));
                }
                res
            }
            TrackIngest::H264Passthrough(p) => {
                let res = p.push_rtp(
                    pkt.sequence,
                    pkt.timestamp,
                    pkt.marker,
                    &pkt.payload,
                    &mut self.packets,
                    &mut self.aus,
                );
                if p.take_params_changed() {
                    params_changed(&self.hub, track, p.params().clone());
                }
                // Without NACK a lost packet breaks the picture until the next keyframe:
                // ask for one now (the publisher side rate-limits).
                if res.as_ref().is_ok_and(|i| i.loss) {
                    self.hub.request_keyframe();
                }
                res.map(|_| ())
            }
        };
        for o in self.packets.drain(..) {
            self.hub.write(t.received_unit(o, None));
        }
        for au in self.aus.drain(..) {
            let pts = t.pts.extend(au.timestamp);
            let dts = match &mut t.ingest {
                TrackIngest::H264(h) => {
                    let picture = crate::codec::h264::dts::picture(h.sps.as_ref(), &au.nals);
                    h.dts.extract(picture, pts)
                }
                TrackIngest::H265(h) => {
                    let first = std::mem::replace(&mut h.first, false);
                    let picture =
                        h265::dts::picture(h.sps.as_ref(), h.pps.as_ref(), &au.nals, first);
                    h.dts.extract(picture, pts)
                }
                _ => pts,
            };
            let mut unit = Unit::frame(track, pts, au.keyframe, Frame::Nals(au.nals), t.packetizer);
            unit.dts = dts;
            unit.ntp = t.ntp_at(au.timestamp);
            self.hub.write(unit);
        }
        if res.is_err() {
            self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
        }
        Ok(res?)
    }
}

fn reframe<C: NalCodec>(
    r: &mut nal::Reframer<C>,
    pkt: &RtpPacket,
    out: &mut Vec<AccessUnit>,
) -> Result<(), H264Error> {
    r.push_rtp(pkt.sequence, pkt.timestamp, pkt.marker, &pkt.payload, out)
}

fn params_changed(hub: &Hub, track: u8, params: ParamSets) {
    debug!(path = hub.path(), "H.264 parameters changed in-band");
    hub.update_track(track as usize, super::Track::h264(params));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_extend_across_the_wrap_and_back_for_reordering() {
        let mut e = Extender::default();
        assert_eq!(e.extend(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(e.extend(5), i64::from(u32::MAX) + 6);
        assert_eq!(e.extend(u32::MAX - 1), i64::from(u32::MAX) - 1);
    }

    fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Bytes {
        let mut p = vec![0x80, 0x80 | 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        Bytes::from(p)
    }

    /// A sender report: SSRC, NTP time, RTP time, no report blocks.
    fn sender_report(ssrc: u32, ntp: u64, rtp_time: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&ntp.to_be_bytes());
        p.extend_from_slice(&rtp_time.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    }

    #[test]
    fn units_get_extended_pts_and_wall_clock_from_sender_reports() {
        let hub = Hub::new("t", vec![super::super::Track::opus(2)], 16);
        let mut r = hub.add_reader().expect("open");
        let mut ingest = Ingest::new(Arc::clone(&hub), &[Some(0)], H264Mode::Reframe);
        ingest
            .push_rtp(0, &rtp(1, u32::MAX - 959, 7, &[1]))
            .expect("ok");
        // A report for another SSRC says nothing about this track.
        ingest.push_rtcp(&sender_report(8, 5 << 32, 0));
        ingest.push_rtp(0, &rtp(2, 0, 7, &[2])).expect("ok");
        ingest.push_rtcp(&sender_report(7, 1000 << 32, 48_000));
        ingest.push_rtp(0, &rtp(3, 960, 7, &[3])).expect("ok");
        let units: Vec<_> = std::iter::from_fn(|| r.try_recv()).collect();
        let pts: Vec<i64> = units.iter().map(|u| u.pts).collect();
        let base = i64::from(u32::MAX - 959);
        assert_eq!(pts, vec![base, base + 960, base + 1920]);
        assert_eq!(units[1].ntp, None);
        // 47 040 ticks before the report on a 48 kHz clock: 0.98 s before its NTP time.
        let want = (1000u64 << 32) - (47_040u64 << 32) / 48_000;
        assert_eq!(units[2].ntp, Some(want));
        assert!(units.iter().all(|u| u.au_start && u.dts == u.pts));
    }

    #[test]
    fn wall_clock_follows_the_rtp_clock() {
        let w = WallClock {
            rtp_time: 90_000,
            ntp: 100 << 32,
        };
        assert_eq!(w.at(180_000, 90_000), Some(101 << 32));
        assert_eq!(w.at(45_000, 90_000), Some((99 << 32) + (1 << 31)));
        assert_eq!(w.at(0, 0), None);
    }
}
