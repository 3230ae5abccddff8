//! RTP payloads in (single NAL, STAP-A, FU-A), NAL units out.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;

/// Reassembles NAL units from RTP payloads (single NAL, STAP-A, FU-A).
#[derive(Debug, Default)]
pub struct Depacketizer {
    /// Reused across NALs: once the previous NAL is dropped downstream the
    /// allocation is reclaimed instead of reallocated.
    fu_buf: BytesMut,
    fu_active: bool,
    /// A partly reassembled NAL was thrown away since the last check.
    discarded: bool,
}

impl Depacketizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the complete NALs in `payload` to `out`. On error nothing is
    /// appended.
    pub fn push(&mut self, payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), H264Error> {
        let &header = payload.first().ok_or(H264Error::EmptyPayload)?;
        let packet_type = nal_type_of(header);
        if packet_type != nal_type::FU_A {
            // FU-A fragments must be consecutive, so anything else ends one.
            self.abandon_fu();
        }
        match packet_type {
            1..=23 => {
                if payload.len() > MAX_NAL_SIZE {
                    return Err(H264Error::NalTooLarge {
                        size: payload.len(),
                    });
                }
                out.push(payload.clone());
                Ok(())
            }
            nal_type::STAP_A => push_stap_a(payload, out),
            nal_type::FU_A => self.push_fu_a(payload, out),
            other => Err(H264Error::UnsupportedPacketType(other)),
        }
    }

    /// Forgets any FU-A in progress (after packet loss).
    pub fn reset(&mut self) {
        self.fu_buf.clear();
        self.fu_active = false;
        self.discarded = false;
    }

    /// True while an FU-A NAL is partly reassembled.
    pub fn has_partial(&self) -> bool {
        self.fu_active
    }

    /// True once after a partly reassembled NAL was discarded because a new
    /// start or a non-FU packet arrived before its end fragment.
    pub fn take_discarded(&mut self) -> bool {
        std::mem::take(&mut self.discarded)
    }

    fn abandon_fu(&mut self) {
        if self.fu_active {
            self.fu_buf.clear();
            self.fu_active = false;
            self.discarded = true;
        }
    }

    fn push_fu_a(&mut self, payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), H264Error> {
        let [indicator, fu_header, data @ ..] = &payload[..] else {
            return Err(H264Error::FuATooShort);
        };
        let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
        if start {
            self.abandon_fu();
            self.fu_active = true;
            self.fu_buf
                .put_u8((indicator & 0xE0) | nal_type_of(*fu_header));
        } else if !self.fu_active {
            return Err(H264Error::FuAWithoutStart);
        }
        let size = self.fu_buf.len() + data.len();
        if size > MAX_NAL_SIZE {
            self.fu_buf.clear();
            self.fu_active = false;
            return Err(H264Error::NalTooLarge { size });
        }
        self.fu_buf.extend_from_slice(data);
        if end {
            self.fu_active = false;
            out.push(self.fu_buf.split().freeze());
        }
        Ok(())
    }
}

/// A malformed STAP-A is dropped whole: its entries cannot be trusted.
fn push_stap_a(payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), H264Error> {
    let before = out.len();
    let result = split_stap_a(payload, out);
    if result.is_err() {
        out.truncate(before);
    }
    result
}

fn split_stap_a(payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), H264Error> {
    let mut at = 1;
    while at < payload.len() {
        let Some(&[hi, lo]) = payload.get(at..at + 2) else {
            return Err(H264Error::StapATruncatedSize { at });
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let start = at + 2;
        let remaining = payload.len() - start;
        if len > remaining {
            return Err(H264Error::StapALengthPastEnd { at, len, remaining });
        }
        if len > 0 {
            out.push(payload.slice(start..start + len));
        }
        at = start + len;
    }
    Ok(())
}
