//! One access unit out as RTP payloads of at most a given size: STAP-A for small NALs
//! that fit together, FU-A for large ones, single NALs as they are.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::codec::frame::RtpPayload;

/// How the next NALs of an access unit go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// One NAL, sent as is (zero-copy).
    Single,
    /// NALs `[start, end)` aggregated; `size` is the STAP-A payload size.
    StapA { end: usize, size: usize },
    /// One NAL too large for a packet.
    FuA,
}

/// Greedy aggregation: consecutive NALs share a STAP-A while it fits.
/// Empty NALs end a group (and are skipped by the caller).
fn next_unit(nals: &[Bytes], start: usize, max_payload: usize) -> Unit {
    let mut size = 1;
    let mut end = start;
    while let Some(nal) = nals.get(end) {
        let too_big = size + 2 + nal.len() > max_payload || nal.len() > usize::from(u16::MAX);
        if nal.is_empty() || too_big {
            break;
        }
        size += 2 + nal.len();
        end += 1;
    }
    if end - start >= 2 {
        Unit::StapA { end, size }
    } else if nals[start].len() <= max_payload {
        Unit::Single
    } else {
        Unit::FuA
    }
}

fn fu_a_fragments(nal_len: usize, max_payload: usize) -> usize {
    (nal_len - 1).div_ceil(max_payload - 2)
}

/// Bytes that must be copied into the shared output buffer for this AU.
fn copied_size(nals: &[Bytes], max_payload: usize) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < nals.len() {
        if nals[i].is_empty() {
            i += 1;
            continue;
        }
        match next_unit(nals, i, max_payload) {
            Unit::Single => i += 1,
            Unit::StapA { end, size } => {
                total += size;
                i = end;
            }
            Unit::FuA => {
                let len = nals[i].len();
                total += len - 1 + 2 * fu_a_fragments(len, max_payload);
                i += 1;
            }
        }
    }
    total
}

fn write_stap_a(nals: &[Bytes], buf: &mut BytesMut) -> Bytes {
    // NRI of an aggregate is the highest NRI it carries (RFC 6184 5.7).
    let nri = nals.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
    let start = buf.len();
    buf.put_u8(nri | nal_type::STAP_A);
    for nal in nals {
        // next_unit only aggregates NALs whose size fits the 16-bit field.
        buf.put_u16(nal.len() as u16);
        buf.extend_from_slice(nal);
    }
    let len = buf.len() - start;
    buf.split_to(len).freeze()
}

fn write_fu_a(nal: &Bytes, max_payload: usize, buf: &mut BytesMut, mut emit: impl FnMut(Bytes)) {
    let indicator = (nal[0] & 0xE0) | nal_type::FU_A;
    let nal_kind = nal_type_of(nal[0]);
    let chunks = nal[1..].chunks(max_payload - 2);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.enumerate() {
        let start_bit = if i == 0 { 0x80 } else { 0 };
        let end_bit = if i == last { 0x40 } else { 0 };
        buf.put_u8(indicator);
        buf.put_u8(start_bit | end_bit | nal_kind);
        buf.extend_from_slice(chunk);
        emit(buf.split_to(2 + chunk.len()).freeze());
    }
}

/// Packetizes one access unit (NALs without start codes) into payloads of
/// at most `max_payload` bytes (values below 3 are raised to 3). Small NALs
/// that fit together share a STAP-A, NALs too large for a packet become
/// FU-A, the rest go as single-NAL packets without copying. All copied
/// bytes of the AU live in one buffer. Empty NALs are skipped.
pub fn packetize_au(nals: &[Bytes], max_payload: usize, out: &mut Vec<RtpPayload>) {
    let max_payload = max_payload.max(MIN_PAYLOAD);
    let first = out.len();
    let mut buf = BytesMut::with_capacity(copied_size(nals, max_payload));
    let mut emit = |payload: Bytes| {
        out.push(RtpPayload {
            payload,
            marker: false,
        })
    };
    let mut i = 0;
    while i < nals.len() {
        if nals[i].is_empty() {
            i += 1;
            continue;
        }
        match next_unit(nals, i, max_payload) {
            Unit::Single => {
                emit(nals[i].clone());
                i += 1;
            }
            Unit::StapA { end, .. } => {
                emit(write_stap_a(&nals[i..end], &mut buf));
                i = end;
            }
            Unit::FuA => {
                write_fu_a(&nals[i], max_payload, &mut buf, &mut emit);
                i += 1;
            }
        }
    }
    if out.len() > first {
        if let Some(last) = out.last_mut() {
            last.marker = true;
        }
    }
}

/// An access unit as the RTP packets a reader sends: its payloads with the unit's timestamp
/// and marks. For tools and tests that look at what a reader gets; the stream core keeps
/// the payloads on the unit instead.
pub fn packetize_access_unit(au: &AccessUnit, max_payload: usize, out: &mut Vec<OutPacket>) {
    let mut payloads = Vec::new();
    packetize_au(&au.nals, max_payload, &mut payloads);
    out.extend(payloads.into_iter().enumerate().map(|(i, p)| OutPacket {
        payload: p.payload,
        timestamp: au.timestamp,
        marker: p.marker,
        au_start: i == 0,
        keyframe: au.keyframe,
    }));
}
