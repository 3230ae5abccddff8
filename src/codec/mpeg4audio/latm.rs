//! RFC 6416 (`MP4A-LATM`) with the StreamMuxConfig in the SDP (`cpresent=0`): each packet
//! group up to the marker bit is one AudioMuxElement, a payload length (bytes of 255, then
//! the rest) ahead of each sub-frame's access unit.

use bytes::{BufMut, Bytes, BytesMut};

use super::MAX_AU_SIZE;
use super::{bad, config, decode_hex, AudioConfig, Mpeg4Audio, Mpeg4AudioError, Packing};
use crate::codec::bits::BitReader;
use crate::codec::frame::RtpPayload;
use crate::codec::sdp::MediaDesc;

pub(super) fn from_sdp(m: &MediaDesc) -> Result<Mpeg4Audio, Mpeg4AudioError> {
    match m.fmtp_param("cpresent") {
        Some("0") => {}
        // RFC 6416 7.1: cpresent defaults to 1, the config in band.
        Some(v) => return Err(bad("cpresent", v, "an in-band StreamMuxConfig is not read")),
        None => {
            return Err(bad(
                "cpresent",
                "1",
                "an in-band StreamMuxConfig is not read",
            ))
        }
    }
    let hex = m
        .fmtp_param("config")
        .ok_or(Mpeg4AudioError::Missing("config"))?;
    let raw = Bytes::from(decode_hex(hex).ok_or_else(|| bad("config", hex, "not hex"))?);
    let (config, sub_frames) = read_mux_config(&raw)?;
    Ok(Mpeg4Audio {
        config,
        packing: Packing::Latm {
            mux_config: raw,
            sub_frames,
            profile_level_id: m.fmtp_param("profile-level-id").unwrap_or("30").to_string(),
        },
    })
}

/// StreamMuxConfig (ISO/IEC 14496-3 1.7.3.1), version 0, one program and layer, frame
/// length type 0: what every LATM sender writes.
fn read_mux_config(raw: &Bytes) -> Result<(AudioConfig, u8), Mpeg4AudioError> {
    let broken = |why: &str| Mpeg4AudioError::BadMuxConfig(format!("{raw:02x?}: {why}"));
    let mut r = BitReader::new(raw);
    let truncated = || broken("truncated");
    if r.flag().ok_or_else(truncated)? {
        return Err(broken("audioMuxVersion 1 is not read"));
    }
    let _all_same_framing = r.flag().ok_or_else(truncated)?;
    let sub_frames = r.bits(6).ok_or_else(truncated)? as u8;
    let programs = r.bits(4).ok_or_else(truncated)?;
    let layers = r.bits(3).ok_or_else(truncated)?;
    if programs != 0 || layers != 0 {
        return Err(broken("more than one program or layer"));
    }
    let fields = config::read(&mut r)
        .filter(|f| f.complete)
        .ok_or_else(|| broken("AudioSpecificConfig not read (program config element?)"))?;
    if r.bits(3).ok_or_else(truncated)? != 0 {
        return Err(broken("frameLengthType other than 0"));
    }
    // The AudioSpecificConfig inside is not byte-aligned; decoders get it from the SDP
    // config, which readers are given as it came.
    Ok((AudioConfig::from_fields(raw.clone(), fields), sub_frames))
}

/// Access units out of LATM packets.
#[derive(Debug)]
pub struct Depacketizer {
    sub_frames: u8,
    /// The AudioMuxElement being collected, up to the marker bit.
    element: BytesMut,
}

impl Depacketizer {
    pub fn new(sub_frames: u8) -> Self {
        Depacketizer {
            sub_frames,
            element: BytesMut::new(),
        }
    }

    pub fn reset(&mut self) {
        self.element.clear();
    }

    /// The AUs of an element complete at this packet go to `out`.
    pub fn push(
        &mut self,
        payload: &Bytes,
        marker: bool,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Mpeg4AudioError> {
        if !marker {
            let size = self.element.len() + payload.len();
            if size > MAX_AU_SIZE {
                self.reset();
                return Err(Mpeg4AudioError::TooLarge(size));
            }
            self.element.extend_from_slice(payload);
            return Ok(());
        }
        let element = if self.element.is_empty() {
            payload.clone()
        } else {
            self.element.extend_from_slice(payload);
            self.element.split().freeze()
        };
        let before = out.len();
        let result = self.split(&element, out);
        if result.is_err() {
            out.truncate(before);
        }
        result
    }

    fn split(&self, element: &Bytes, out: &mut Vec<Bytes>) -> Result<(), Mpeg4AudioError> {
        let mut at = 0;
        for _ in 0..=self.sub_frames {
            let mut len = 0usize;
            loop {
                let &b = element
                    .get(at)
                    .ok_or(Mpeg4AudioError::LatmTruncated(element.len()))?;
                at += 1;
                len += usize::from(b);
                if b != 255 {
                    break;
                }
            }
            let au = element
                .get(at..at + len)
                .ok_or(Mpeg4AudioError::SizesPastEnd {
                    sizes: len,
                    data: element.len() - at,
                })?;
            if !au.is_empty() {
                out.push(element.slice(at..at + len));
            }
            at += len;
        }
        Ok(())
    }
}

/// One AU as an AudioMuxElement in RTP payloads of at most `max_payload` bytes.
pub fn packetize(au: &Bytes, max_payload: usize, out: &mut Vec<RtpPayload>) {
    let mut element = BytesMut::with_capacity(au.len() / 255 + 1 + au.len());
    element.put_bytes(255, au.len() / 255);
    element.put_u8((au.len() % 255) as u8);
    element.extend_from_slice(au);
    let element = element.freeze();
    let chunk = max_payload.max(1);
    let count = element.len().div_ceil(chunk);
    for i in 0..count {
        let end = ((i + 1) * chunk).min(element.len());
        out.push(RtpPayload {
            payload: element.slice(i * chunk..end),
            marker: i + 1 == count,
        });
    }
}
