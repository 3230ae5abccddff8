//! RTP payloads in (single NAL, aggregation packet, fragmentation unit), NAL units out.

use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};

use super::*;

/// Reassembles NAL units from RTP payloads.
#[derive(Debug)]
pub struct Depacketizer<C> {
    /// Reused across NALs: once the previous NAL is dropped downstream the allocation is
    /// reclaimed instead of reallocated.
    fu_buf: BytesMut,
    fu_active: bool,
    /// A partly reassembled NAL was thrown away since the last check.
    discarded: bool,
    codec: PhantomData<C>,
}

impl<C> Default for Depacketizer<C> {
    fn default() -> Self {
        Depacketizer {
            fu_buf: BytesMut::new(),
            fu_active: false,
            discarded: false,
            codec: PhantomData,
        }
    }
}

impl<C: NalCodec> Depacketizer<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the complete NALs in `payload` to `out`. On error nothing is appended.
    pub fn push(&mut self, payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), NalError> {
        if payload.is_empty() {
            return Err(NalError::EmptyPayload);
        }
        let header = payload
            .get(..C::HEADER_LEN)
            .ok_or(NalError::HeaderTooShort {
                len: payload.len(),
                need: C::HEADER_LEN,
            })?;
        let kind = C::packet_kind(header);
        if kind != PacketKind::Fragment {
            // Fragments must be consecutive, so anything else ends one.
            self.abandon_fu();
        }
        match kind {
            PacketKind::Single => {
                if payload.len() > MAX_NAL_SIZE {
                    return Err(NalError::NalTooLarge {
                        size: payload.len(),
                    });
                }
                out.push(payload.clone());
                Ok(())
            }
            PacketKind::Aggregate => push_aggregate(payload, C::HEADER_LEN, out),
            PacketKind::Fragment => self.push_fu(payload, out),
            PacketKind::Unsupported => {
                let packet_type = C::packet_type(header);
                Err(NalError::UnsupportedPacketType {
                    codec: C::NAME,
                    packet_type,
                    name: C::packet_type_name(packet_type),
                })
            }
        }
    }

    /// Forgets any fragmented NAL in progress (after packet loss).
    pub fn reset(&mut self) {
        self.fu_buf.clear();
        self.fu_active = false;
        self.discarded = false;
    }

    /// True while a fragmented NAL is partly reassembled.
    pub fn has_partial(&self) -> bool {
        self.fu_active
    }

    /// True once after a partly reassembled NAL was discarded because a new start or a
    /// packet of another kind arrived before its end fragment.
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

    fn push_fu(&mut self, payload: &Bytes, out: &mut Vec<Bytes>) -> Result<(), NalError> {
        let (payload_header, rest) = payload.split_at(C::HEADER_LEN);
        let [fu_header, data @ ..] = rest else {
            return Err(NalError::FuTooShort);
        };
        let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
        if start {
            self.abandon_fu();
            self.fu_active = true;
            C::fragment_nal_header(payload_header, *fu_header, &mut self.fu_buf);
        } else if !self.fu_active {
            return Err(NalError::FuWithoutStart);
        }
        let size = self.fu_buf.len() + data.len();
        if size > MAX_NAL_SIZE {
            self.fu_buf.clear();
            self.fu_active = false;
            return Err(NalError::NalTooLarge { size });
        }
        self.fu_buf.extend_from_slice(data);
        if end {
            self.fu_active = false;
            out.push(self.fu_buf.split().freeze());
        }
        Ok(())
    }
}

/// A malformed aggregation packet is dropped whole: its entries cannot be trusted.
fn push_aggregate(
    payload: &Bytes,
    header_len: usize,
    out: &mut Vec<Bytes>,
) -> Result<(), NalError> {
    let before = out.len();
    let result = split_aggregate(payload, header_len, out);
    if result.is_err() {
        out.truncate(before);
    }
    result
}

/// Entries are a 16-bit size and a NAL unit (H.265 without DONL: sprop-max-don-diff is 0
/// for every sender that matters).
fn split_aggregate(
    payload: &Bytes,
    header_len: usize,
    out: &mut Vec<Bytes>,
) -> Result<(), NalError> {
    let mut at = header_len;
    while at < payload.len() {
        let Some(&[hi, lo]) = payload.get(at..at + 2) else {
            return Err(NalError::AggregateTruncatedSize { at });
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let start = at + 2;
        let remaining = payload.len() - start;
        if len > remaining {
            return Err(NalError::AggregateLengthPastEnd { at, len, remaining });
        }
        if len > 0 {
            out.push(payload.slice(start..start + len));
        }
        at = start + len;
    }
    Ok(())
}
