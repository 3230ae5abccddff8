//! One access unit out as RTP payloads of at most a given size: an aggregation packet for
//! small NALs that fit together, fragmentation units for large ones, single NALs as they are.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::codec::frame::RtpPayload;

/// How the next NALs of an access unit go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// One NAL, sent as is (zero-copy).
    Single,
    /// NALs `[start, end)` aggregated; `size` is the aggregation packet's size.
    Aggregate { end: usize, size: usize },
    /// One NAL too large for a packet.
    Fragments,
}

/// Greedy aggregation: consecutive NALs share a packet while it fits. Empty NALs and NALs
/// shorter than a header end a group (and are skipped by the caller).
fn next_unit<C: NalCodec>(nals: &[Bytes], start: usize, max_payload: usize) -> Unit {
    let mut size = C::HEADER_LEN;
    let mut end = start;
    while let Some(nal) = nals.get(end) {
        let too_big = size + 2 + nal.len() > max_payload || nal.len() > usize::from(u16::MAX);
        if nal.len() < C::HEADER_LEN || too_big {
            break;
        }
        size += 2 + nal.len();
        end += 1;
    }
    if end - start >= 2 {
        Unit::Aggregate { end, size }
    } else if nals[start].len() <= max_payload {
        Unit::Single
    } else {
        Unit::Fragments
    }
}

/// Payload header plus FU header.
fn fu_overhead<C: NalCodec>() -> usize {
    C::HEADER_LEN + 1
}

fn fragments<C: NalCodec>(nal_len: usize, max_payload: usize) -> usize {
    (nal_len - C::HEADER_LEN).div_ceil(max_payload - fu_overhead::<C>())
}

/// Bytes that must be copied into the shared output buffer for this AU.
fn copied_size<C: NalCodec>(nals: &[Bytes], max_payload: usize) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < nals.len() {
        if nals[i].len() < C::HEADER_LEN {
            i += 1;
            continue;
        }
        match next_unit::<C>(nals, i, max_payload) {
            Unit::Single => i += 1,
            Unit::Aggregate { end, size } => {
                total += size;
                i = end;
            }
            Unit::Fragments => {
                let len = nals[i].len();
                let n = fragments::<C>(len, max_payload);
                total += len - C::HEADER_LEN + fu_overhead::<C>() * n;
                i += 1;
            }
        }
    }
    total
}

fn write_aggregate<C: NalCodec>(nals: &[Bytes], buf: &mut BytesMut) -> Bytes {
    let start = buf.len();
    C::aggregate_header(nals, buf);
    for nal in nals {
        // next_unit only aggregates NALs whose size fits the 16-bit field.
        buf.put_u16(nal.len() as u16);
        buf.extend_from_slice(nal);
    }
    let len = buf.len() - start;
    buf.split_to(len).freeze()
}

fn write_fragments<C: NalCodec>(
    nal: &Bytes,
    max_payload: usize,
    buf: &mut BytesMut,
    mut emit: impl FnMut(Bytes),
) {
    let chunks = nal[C::HEADER_LEN..].chunks(max_payload - fu_overhead::<C>());
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.enumerate() {
        let start_bit = if i == 0 { 0x80 } else { 0 };
        let end_bit = if i == last { 0x40 } else { 0 };
        let nal_kind = C::fragment_header(nal, buf);
        buf.put_u8(start_bit | end_bit | nal_kind);
        buf.extend_from_slice(chunk);
        emit(buf.split_to(fu_overhead::<C>() + chunk.len()).freeze());
    }
}

/// Packetizes one access unit (NALs without start codes) into payloads of at most
/// `max_payload` bytes (raised to the smallest that holds a fragment). Small NALs that fit
/// together share an aggregation packet, NALs too large for a packet are fragmented, the
/// rest go as single-NAL packets without copying. All copied bytes of the AU live in one
/// buffer. NALs shorter than a header are skipped.
pub fn packetize_au<C: NalCodec>(nals: &[Bytes], max_payload: usize, out: &mut Vec<RtpPayload>) {
    let max_payload = max_payload.max(fu_overhead::<C>() + 1);
    let first = out.len();
    let mut buf = BytesMut::with_capacity(copied_size::<C>(nals, max_payload));
    let mut emit = |payload: Bytes| {
        out.push(RtpPayload {
            payload,
            marker: false,
        })
    };
    let mut i = 0;
    while i < nals.len() {
        if nals[i].len() < C::HEADER_LEN {
            i += 1;
            continue;
        }
        match next_unit::<C>(nals, i, max_payload) {
            Unit::Single => {
                emit(nals[i].clone());
                i += 1;
            }
            Unit::Aggregate { end, .. } => {
                emit(write_aggregate::<C>(&nals[i..end], &mut buf));
                i = end;
            }
            Unit::Fragments => {
                write_fragments::<C>(&nals[i], max_payload, &mut buf, &mut emit);
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
pub fn packetize_access_unit<C: NalCodec>(
    au: &AccessUnit,
    max_payload: usize,
    out: &mut Vec<OutPacket>,
) {
    let mut payloads = Vec::new();
    packetize_au::<C>(&au.nals, max_payload, &mut payloads);
    out.extend(payloads.into_iter().enumerate().map(|(i, p)| OutPacket {
        payload: p.payload,
        timestamp: au.timestamp,
        marker: p.marker,
        au_start: i == 0,
        keyframe: au.keyframe,
    }));
}
