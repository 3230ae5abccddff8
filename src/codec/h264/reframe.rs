//! The per-stream pipeline for cameras: RTP in, access units out, with SPS/PPS ahead of
//! every IDR and nothing a decoder does not need.

use bytes::Bytes;

use super::*;

/// Where an incoming sequence number sits relative to the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqCheck {
    Next,
    Gap,
    Late,
}

/// The access unit being collected.
#[derive(Debug, Default)]
struct PendingAu {
    timestamp: Option<u32>,
    /// Packets were lost or broken: drop the rest of this AU.
    damaged: bool,
    nals: Vec<Bytes>,
    size: usize,
    has_idr: bool,
    has_sps: bool,
    has_pps: bool,
    /// Holds a coded slice: an AU of parameter sets or SEI alone is no picture.
    has_vcl: bool,
}

impl PendingAu {
    fn clear(&mut self) {
        self.timestamp = None;
        self.damaged = false;
        self.nals.clear();
        self.size = 0;
        self.has_idr = false;
        self.has_sps = false;
        self.has_pps = false;
        self.has_vcl = false;
    }

    fn damage(&mut self, timestamp: u32) {
        self.clear();
        self.timestamp = Some(timestamp);
        self.damaged = true;
    }

    /// Puts the known SPS and PPS first, replacing any partial in-band set
    /// (whose contents were already learned into `params`).
    fn prepend_param_sets(&mut self, params: &ParamSets) {
        self.nals.retain(|n| {
            !matches!(
                n.first().map(|&h| nal_type_of(h)),
                Some(nal_type::SPS | nal_type::PPS)
            )
        });
        let known = params.sps.iter().chain(params.pps.iter()).cloned();
        self.nals.splice(0..0, known);
    }
}

/// The whole per-stream pipeline: RTP in -> access units out.
#[derive(Debug)]
pub struct Reframer {
    params: ParamSets,
    params_changed: bool,
    /// A B slice was seen: frames are reordered.
    b_frames: bool,
    depacketizer: Depacketizer,
    last_seq: Option<u16>,
    au: PendingAu,
    /// Reused per packet for the depacketizer's output.
    scratch: Vec<Bytes>,
}

impl Reframer {
    pub fn new(params: ParamSets) -> Self {
        Reframer {
            params,
            params_changed: false,
            b_frames: false,
            depacketizer: Depacketizer::new(),
            last_seq: None,
            au: PendingAu::default(),
            scratch: Vec::new(),
        }
    }

    /// One input RTP packet. Completed access units go to `out`. An AU ends on the marker bit, or when the timestamp changes
    /// (marker lost). A sequence gap or a broken packet discards the AU in
    /// progress and everything up to the next AU boundary; broken packets
    /// also return Err. Late and duplicate packets are ignored.
    pub fn push_rtp(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &Bytes,
        out: &mut Vec<AccessUnit>,
    ) -> Result<(), H264Error> {
        match self.check_seq(seq) {
            SeqCheck::Late => return Ok(()),
            // The lost packets may have begun this packet's AU, so its
            // timestamp is dropped too: only a later boundary is safe.
            SeqCheck::Gap => self.discard(timestamp),
            SeqCheck::Next => {}
        }
        self.last_seq = Some(seq);
        if self.au.timestamp.is_some_and(|ts| ts != timestamp) {
            self.finish_au(out);
        }
        self.au.timestamp = Some(timestamp);
        let result = if self.au.damaged {
            Ok(())
        } else {
            self.add_packet(payload)
        };
        if result.is_err() || self.depacketizer.take_discarded() {
            self.discard(timestamp);
        }
        if marker {
            self.finish_au(out);
        }
        result
    }

    /// [`Self::push_rtp`], with each finished access unit packetized for WebRTC: what a
    /// WebRTC reader of this stream receives.
    pub fn push_rtp_as_packets(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &Bytes,
        out: &mut Vec<OutPacket>,
    ) -> Result<(), H264Error> {
        let mut aus = Vec::new();
        let result = self.push_rtp(seq, timestamp, marker, payload, &mut aus);
        for au in &aus {
            packetize_access_unit(au, MAX_PAYLOAD, out);
        }
        result
    }

    pub fn params(&self) -> &ParamSets {
        &self.params
    }

    /// Whether the stream has B-frames (seen so far).
    pub fn has_b_frames(&self) -> bool {
        self.b_frames
    }

    /// True once after in-band SPS/PPS differ from what was known.
    pub fn take_params_changed(&mut self) -> bool {
        std::mem::take(&mut self.params_changed)
    }

    /// Forgets all stream state except the parameter sets (source restart).
    pub fn reset(&mut self) {
        self.depacketizer.reset();
        self.au.clear();
        self.last_seq = None;
    }

    fn check_seq(&self, seq: u16) -> SeqCheck {
        let Some(last) = self.last_seq else {
            return SeqCheck::Next;
        };
        match seq.wrapping_sub(last) as i16 {
            1 => SeqCheck::Next,
            delta if (-MAX_MISORDER..=0).contains(&delta) => SeqCheck::Late,
            _ => SeqCheck::Gap,
        }
    }

    fn discard(&mut self, timestamp: u32) {
        self.depacketizer.reset();
        self.au.damage(timestamp);
    }

    fn add_packet(&mut self, payload: &Bytes) -> Result<(), H264Error> {
        let mut nals = std::mem::take(&mut self.scratch);
        let result = self
            .depacketizer
            .push(payload, &mut nals)
            .and_then(|()| nals.drain(..).try_for_each(|nal| self.add_nal(nal)));
        nals.clear();
        self.scratch = nals;
        result
    }

    fn add_nal(&mut self, nal: Bytes) -> Result<(), H264Error> {
        let au = &mut self.au;
        match nal_type_of(nal[0]) {
            // Decoders do not need them and they only cost bandwidth.
            nal_type::AUD | nal_type::FILLER => return Ok(()),
            // Unspecified (0) or RTP packet types (24..=31) unpacked from a STAP-A or FU-A:
            // decoders ignore them, and sent on as they are a reader's depacketizer would
            // take them for an aggregate or fragment header.
            0 | 24..=31 => return Ok(()),
            nal_type::SPS => {
                au.has_sps = true;
                self.params_changed |= learn(&mut self.params.sps, &nal);
            }
            nal_type::PPS => {
                au.has_pps = true;
                self.params_changed |= learn(&mut self.params.pps, &nal);
            }
            nal_type::IDR => au.has_idr = true,
            nal_type::SLICE if !self.b_frames => self.b_frames = is_b_slice(&nal),
            _ => {}
        }
        au.has_vcl |= (1..=5).contains(&nal_type_of(nal[0]));
        // Each NAL unit is charged its handle too, so a flood of 1-byte NAL units in one
        // access unit hits the limit long before millions of them are held.
        au.size += nal.len() + NAL_OVERHEAD;
        if au.size > MAX_AU_SIZE || au.nals.len() >= MAX_AU_NALS {
            return Err(H264Error::AuTooLarge { size: au.size });
        }
        au.nals.push(nal);
        Ok(())
    }

    fn finish_au(&mut self, out: &mut Vec<AccessUnit>) {
        // An FU-A still open at the boundary lost its end fragment.
        if self.depacketizer.has_partial() {
            self.depacketizer.reset();
            self.au.damaged = true;
        }
        let au = &mut self.au;
        match au.timestamp {
            // Parameter sets sent on their own (GStreamer's rtph264pay with config-interval
            // stamps them with the previous frame's time) are learned above and put ahead of
            // the next IDR; sent alone they would be a second "frame" at an old timestamp.
            Some(_) if !au.has_vcl => {}
            Some(timestamp) if !au.damaged => {
                if au.has_idr && !(au.has_sps && au.has_pps) {
                    au.prepend_param_sets(&self.params);
                }
                out.push(AccessUnit {
                    timestamp,
                    keyframe: au.has_idr,
                    nals: std::mem::take(&mut au.nals),
                });
            }
            _ => {}
        }
        au.clear();
    }
}

/// Stores an in-band parameter set; true if it differs from the known one.
/// Copied so that the stored set does not pin a large input packet.
fn learn(slot: &mut Option<Bytes>, nal: &Bytes) -> bool {
    if slot.as_deref() == Some(&nal[..]) {
        return false;
    }
    *slot = Some(Bytes::copy_from_slice(nal));
    true
}
