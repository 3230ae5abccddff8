//! The per-stream pipeline for cameras: RTP in, access units out, with the parameter sets
//! ahead of every keyframe and nothing a decoder does not need.

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
    keyframe: bool,
    /// Bit n: a parameter set of kind n came in band.
    params_seen: u8,
    /// Holds a coded slice: an AU of parameter sets or SEI alone is no picture.
    has_vcl: bool,
}

impl PendingAu {
    fn clear(&mut self) {
        self.timestamp = None;
        self.damaged = false;
        self.nals.clear();
        self.size = 0;
        self.keyframe = false;
        self.params_seen = 0;
        self.has_vcl = false;
    }

    fn damage(&mut self, timestamp: u32) {
        self.clear();
        self.timestamp = Some(timestamp);
        self.damaged = true;
    }

    /// Puts the known parameter sets first, replacing any partial in-band set (whose
    /// contents were already learned into `params`).
    fn prepend_param_sets<C: NalCodec>(&mut self, params: &C::Params) {
        self.nals
            .retain(|n| !matches!(C::role(n), NalRole::ParamSet(_)));
        let known = params.sets().cloned();
        self.nals.splice(0..0, known);
    }
}

/// The whole per-stream pipeline: RTP in -> access units out.
#[derive(Debug)]
pub struct Reframer<C: NalCodec> {
    params: C::Params,
    params_changed: bool,
    /// A B slice was seen: frames are reordered.
    b_frames: bool,
    depacketizer: Depacketizer<C>,
    last_seq: Option<u16>,
    au: PendingAu,
    /// Reused per packet for the depacketizer's output.
    scratch: Vec<Bytes>,
}

impl<C: NalCodec> Reframer<C> {
    pub fn new(params: C::Params) -> Self {
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

    /// One input RTP packet. Completed access units go to `out`. An AU ends on the marker
    /// bit, or when the timestamp changes (marker lost). A sequence gap or a broken packet
    /// discards the AU in progress and everything up to the next AU boundary; broken
    /// packets also return Err. Late and duplicate packets are ignored.
    pub fn push_rtp(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &Bytes,
        out: &mut Vec<AccessUnit>,
    ) -> Result<(), NalError> {
        match self.check_seq(seq) {
            SeqCheck::Late => return Ok(()),
            // The lost packets may have begun this packet's AU, so its timestamp is dropped
            // too: only a later boundary is safe.
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
    ) -> Result<(), NalError> {
        let mut aus = Vec::new();
        let result = self.push_rtp(seq, timestamp, marker, payload, &mut aus);
        for au in &aus {
            packetize_access_unit::<C>(au, MAX_PAYLOAD, out);
        }
        result
    }

    pub fn params(&self) -> &C::Params {
        &self.params
    }

    /// Whether the stream has B-frames (seen so far).
    pub fn has_b_frames(&self) -> bool {
        self.b_frames
    }

    /// True once after in-band parameter sets differ from what was known.
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

    fn add_packet(&mut self, payload: &Bytes) -> Result<(), NalError> {
        let mut nals = std::mem::take(&mut self.scratch);
        let result = self
            .depacketizer
            .push(payload, &mut nals)
            .and_then(|()| nals.drain(..).try_for_each(|nal| self.add_nal(nal)));
        nals.clear();
        self.scratch = nals;
        result
    }

    fn add_nal(&mut self, nal: Bytes) -> Result<(), NalError> {
        // An aggregated entry too short for a NAL header is no NAL unit.
        if nal.len() < C::HEADER_LEN {
            return Ok(());
        }
        let au = &mut self.au;
        match C::role(&nal) {
            NalRole::Drop => return Ok(()),
            NalRole::ParamSet(kind) => {
                au.params_seen |= 1 << kind;
                let slot = self.params.slot(kind);
                self.params_changed |= learn(slot, &nal);
            }
            NalRole::Keyframe => {
                au.keyframe = true;
                au.has_vcl = true;
            }
            NalRole::Picture => {
                au.has_vcl = true;
                if !self.b_frames {
                    self.b_frames = C::is_b_slice(&nal);
                }
            }
            NalRole::Other => {}
        }
        // Each NAL unit is charged its handle too, so a flood of 1-byte NAL units in one
        // access unit hits the limit long before millions of them are held.
        au.size += nal.len() + NAL_OVERHEAD;
        if au.size > MAX_AU_SIZE || au.nals.len() >= MAX_AU_NALS {
            return Err(NalError::AuTooLarge { size: au.size });
        }
        au.nals.push(nal);
        Ok(())
    }

    fn finish_au(&mut self, out: &mut Vec<AccessUnit>) {
        // A fragmented NAL still open at the boundary lost its end fragment.
        if self.depacketizer.has_partial() {
            self.depacketizer.reset();
            self.au.damaged = true;
        }
        let au = &mut self.au;
        let all_params = (1u8 << <C::Params as ParamStore>::KINDS) - 1;
        match au.timestamp {
            // Parameter sets sent on their own (GStreamer's payloaders with config-interval
            // stamp them with the previous frame's time) are learned above and put ahead of
            // the next keyframe; sent alone they would be a second "frame" at an old time.
            Some(_) if !au.has_vcl => {}
            Some(timestamp) if !au.damaged => {
                if au.keyframe && au.params_seen & all_params != all_params {
                    au.prepend_param_sets::<C>(&self.params);
                }
                out.push(AccessUnit {
                    timestamp,
                    keyframe: au.keyframe,
                    nals: std::mem::take(&mut au.nals),
                });
            }
            _ => {}
        }
        au.clear();
    }
}

/// Stores an in-band parameter set; true if it differs from the known one. Copied so that
/// the stored set does not pin a large input packet.
fn learn(slot: &mut Option<Bytes>, nal: &Bytes) -> bool {
    if slot.as_deref() == Some(&nal[..]) {
        return false;
    }
    *slot = Some(Bytes::copy_from_slice(nal));
    true
}
