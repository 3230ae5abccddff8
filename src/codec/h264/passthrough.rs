//! H.264 from a WebRTC publisher: its packets already fit our MTU, so they go to the hub as
//! they are (no depacketize/repacketize round trip). We only read NAL headers to learn
//! SPS/PPS, mark access-unit starts and keyframes, and put SPS+PPS ahead of an IDR that
//! arrives without them. A packet that does not fit switches the stream to the full reframer,
//! whose access units go out in `aus` instead.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    nal_type, nal_type_of, AccessUnit, H264Error, NalCodec, OutPacket, ParamSets, Reframer, H264,
    MAX_PAYLOAD,
};

/// What the NAL headers of one RTP payload say.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Contents {
    idr: bool,
    sps: bool,
}

pub struct H264Passthrough {
    params: ParamSets,
    params_changed: bool,
    last_ts: Option<u32>,
    last_seq: Option<u16>,
    /// The next packet starts an access unit.
    at_au_start: bool,
    cur_keyframe: bool,
    /// Set once a packet was too large: from then on everything is reframed.
    reframer: Option<Box<Reframer>>,
}

/// What one pushed packet told the caller besides the packets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushInfo {
    /// Packets were lost before this one: the caller should ask for a keyframe.
    pub loss: bool,
}

impl Default for H264Passthrough {
    fn default() -> Self {
        H264Passthrough {
            params: ParamSets::default(),
            params_changed: false,
            last_ts: None,
            last_seq: None,
            at_au_start: true,
            cur_keyframe: false,
            reframer: None,
        }
    }
}

impl H264Passthrough {
    pub fn params(&self) -> &ParamSets {
        match &self.reframer {
            Some(r) => r.params(),
            None => &self.params,
        }
    }

    pub fn take_params_changed(&mut self) -> bool {
        let from_reframer = self
            .reframer
            .as_mut()
            .is_some_and(|r| r.take_params_changed());
        std::mem::take(&mut self.params_changed) || from_reframer
    }

    pub fn push_rtp(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &Bytes,
        out: &mut Vec<OutPacket>,
        aus: &mut Vec<AccessUnit>,
    ) -> Result<PushInfo, H264Error> {
        let loss = self
            .last_seq
            .is_some_and(|last| seq.wrapping_sub(last) != 1 && seq.wrapping_sub(last) < 0x8000);
        self.last_seq = Some(seq);
        let info = PushInfo { loss };
        if self.reframer.is_none() && payload.len() > MAX_PAYLOAD {
            let mut r = Reframer::new(self.params.clone());
            // Whatever the reframer learns from now on is reported by it.
            r.take_params_changed();
            self.reframer = Some(Box::new(r));
        }
        if let Some(r) = &mut self.reframer {
            r.push_rtp(seq, timestamp, marker, payload, aus)?;
            return Ok(info);
        }
        if self.last_ts.is_some_and(|t| t != timestamp) {
            // A lost marker: the timestamp change still ends the previous access unit.
            self.at_au_start = true;
        }
        self.last_ts = Some(timestamp);
        let contents = self.inspect(payload)?;
        let au_start = std::mem::replace(&mut self.at_au_start, marker);
        if au_start {
            self.cur_keyframe = contents.idr || contents.sps;
            if contents.idr && !contents.sps {
                if let Some(stap) = self.param_sets_stap_a() {
                    out.push(OutPacket {
                        payload: stap,
                        timestamp,
                        marker: false,
                        au_start: true,
                        keyframe: true,
                    });
                    out.push(OutPacket {
                        payload: payload.clone(),
                        timestamp,
                        marker,
                        au_start: false,
                        keyframe: true,
                    });
                    return Ok(info);
                }
            }
        }
        out.push(OutPacket {
            payload: payload.clone(),
            timestamp,
            marker,
            au_start,
            keyframe: self.cur_keyframe,
        });
        Ok(info)
    }

    /// Reads the NAL types of a payload, keeping SPS/PPS as they pass.
    fn inspect(&mut self, payload: &Bytes) -> Result<Contents, H264Error> {
        let first = *payload.first().ok_or(H264Error::EmptyPayload)?;
        let mut c = Contents::default();
        match nal_type_of(first) {
            nal_type::STAP_A => {
                let mut at = 1;
                while at + 2 <= payload.len() {
                    let len = u16::from_be_bytes([payload[at], payload[at + 1]]) as usize;
                    let start = at + 2;
                    let end = start + len;
                    if end > payload.len() {
                        return Err(H264Error::AggregateLengthPastEnd {
                            at,
                            len,
                            remaining: payload.len() - start,
                        });
                    }
                    if len > 0 {
                        self.note_nal(&payload.slice(start..end), &mut c);
                    }
                    at = end;
                }
            }
            nal_type::FU_A => {
                let header = *payload.get(1).ok_or(H264Error::FuTooShort)?;
                let start = header & 0x80 != 0;
                if start && nal_type_of(header) == nal_type::IDR {
                    c.idr = true;
                }
            }
            t @ 1..=23 => {
                if t == nal_type::SPS || t == nal_type::PPS {
                    self.note_nal(payload, &mut c);
                } else if t == nal_type::IDR {
                    c.idr = true;
                }
            }
            other => {
                return Err(H264Error::UnsupportedPacketType {
                    codec: H264::NAME,
                    packet_type: other,
                    name: H264::packet_type_name(other),
                })
            }
        }
        Ok(c)
    }

    fn note_nal(&mut self, nal: &Bytes, c: &mut Contents) {
        let Some(&h) = nal.first() else { return };
        // Copied: a slice would keep the whole received packet alive.
        let own = || Some(Bytes::copy_from_slice(nal));
        match nal_type_of(h) {
            nal_type::SPS => {
                c.sps = true;
                if self.params.sps.as_deref() != Some(&nal[..]) {
                    self.params.sps = own();
                    self.params_changed = true;
                }
            }
            nal_type::PPS if self.params.pps.as_deref() != Some(&nal[..]) => {
                self.params.pps = own();
                self.params_changed = true;
            }
            nal_type::IDR => c.idr = true,
            _ => {}
        }
    }

    fn param_sets_stap_a(&self) -> Option<Bytes> {
        let (sps, pps) = (self.params.sps.as_ref()?, self.params.pps.as_ref()?);
        let len = 1 + 2 + sps.len() + 2 + pps.len();
        if len > MAX_PAYLOAD {
            return None;
        }
        let mut b = BytesMut::with_capacity(len);
        // F=0, NRI = the highest of the two, type 24.
        b.put_u8((sps[0] & 0x60).max(pps[0] & 0x60) | nal_type::STAP_A);
        for nal in [sps, pps] {
            b.put_u16(nal.len() as u16);
            b.put_slice(nal);
        }
        Some(b.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn stap(nals: &[&[u8]]) -> Bytes {
        let mut b = vec![0x78];
        for n in nals {
            b.extend_from_slice(&(n.len() as u16).to_be_bytes());
            b.extend_from_slice(n);
        }
        Bytes::from(b)
    }

    fn fu(start: bool, end: bool, typ: u8, body: &[u8]) -> Bytes {
        let mut b = vec![
            0x7c,
            (if start { 0x80 } else { 0 }) | (if end { 0x40 } else { 0 }) | typ,
        ];
        b.extend_from_slice(body);
        Bytes::from(b)
    }

    #[test]
    fn packets_pass_unchanged_with_au_and_keyframe_marks() {
        let mut p = H264Passthrough::default();
        let mut out = Vec::new();
        let mut aus = Vec::new();
        let first = stap(&[SPS, PPS]);
        p.push_rtp(1, 100, false, &first, &mut out, &mut aus)
            .expect("ok");
        p.push_rtp(
            2,
            100,
            false,
            &fu(true, false, 5, &[1; 800]),
            &mut out,
            &mut aus,
        )
        .expect("ok");
        p.push_rtp(
            3,
            100,
            true,
            &fu(false, true, 5, &[2; 800]),
            &mut out,
            &mut aus,
        )
        .expect("ok");
        p.push_rtp(
            4,
            3100,
            true,
            &Bytes::from_static(&[0x41, 9, 9]),
            &mut out,
            &mut aus,
        )
        .expect("ok");
        let marks: Vec<(bool, bool, bool)> = out
            .iter()
            .map(|o| (o.au_start, o.keyframe, o.marker))
            .collect();
        assert_eq!(
            marks,
            vec![
                (true, true, false),
                (false, true, false),
                (false, true, true),
                (true, false, true)
            ]
        );
        // Same buffer, not just equal bytes: pass-through must not copy.
        assert_eq!(out[0].payload.as_ptr(), first.as_ptr());
        assert_eq!(p.params().sps.as_deref(), Some(SPS));
        assert!(p.take_params_changed());
        assert!(!p.take_params_changed());
    }

    #[test]
    fn idr_without_param_sets_gets_them_first() {
        let mut p = H264Passthrough::default();
        let mut out = Vec::new();
        let mut aus = Vec::new();
        p.push_rtp(
            1,
            100,
            true,
            &stap(&[SPS, PPS, &[0x65, 1, 2]]),
            &mut out,
            &mut aus,
        )
        .expect("ok");
        out.clear();
        p.push_rtp(
            2,
            200,
            true,
            &Bytes::from_static(&[0x65, 3, 4]),
            &mut out,
            &mut aus,
        )
        .expect("ok");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload, stap(&[SPS, PPS]));
        assert!(out[0].au_start && out[0].keyframe && !out[0].marker);
        assert!(!out[1].au_start && out[1].marker);
    }

    #[test]
    fn oversize_packet_switches_to_reframing() {
        let mut p = H264Passthrough::default();
        let mut out = Vec::new();
        let mut aus = Vec::new();
        p.push_rtp(1, 100, true, &stap(&[SPS, PPS]), &mut out, &mut aus)
            .expect("ok");
        let mut big = vec![0x65];
        big.extend(std::iter::repeat_n(7u8, 5000));
        out.clear();
        p.push_rtp(2, 200, true, &Bytes::from(big), &mut out, &mut aus)
            .expect("ok");
        assert!(out.is_empty());
        assert_eq!(aus.len(), 1, "the large IDR is one access unit");
        assert!(aus[0].keyframe);
        assert_eq!(aus[0].nals.len(), 3, "SPS, PPS, IDR");
    }

    #[test]
    fn loss_is_reported_and_broken_packets_refused() {
        let mut p = H264Passthrough::default();
        let mut out = Vec::new();
        let mut aus = Vec::new();
        assert!(
            !p.push_rtp(
                1,
                1,
                true,
                &Bytes::from_static(&[0x41, 1]),
                &mut out,
                &mut aus
            )
            .expect("ok")
            .loss
        );
        assert!(
            p.push_rtp(
                5,
                2,
                true,
                &Bytes::from_static(&[0x41, 1]),
                &mut out,
                &mut aus
            )
            .expect("ok")
            .loss
        );
        assert!(p
            .push_rtp(6, 3, true, &Bytes::new(), &mut out, &mut aus)
            .is_err());
        assert!(p
            .push_rtp(
                7,
                4,
                true,
                &Bytes::from_static(&[0x78, 0, 9, 1]),
                &mut out,
                &mut aus
            )
            .is_err());
        assert!(p
            .push_rtp(8, 5, true, &Bytes::from_static(&[0x7c]), &mut out, &mut aus)
            .is_err());
        assert!(p
            .push_rtp(
                9,
                6,
                true,
                &Bytes::from_static(&[0x79, 1]),
                &mut out,
                &mut aus
            )
            .is_err());
    }
}
