//! VP9 over RTP (RFC 9628). Browsers' packets fit a WebRTC MTU and pass through as they
//! are; the payload descriptor says where a frame begins and whether it is predicted from
//! an earlier one, and the frame's own header says whether it is a key frame (ffmpeg's
//! packetizer never sets the descriptor's P bit, so the header has the last word).

use bytes::{Bytes, BytesMut};

/// The rtpmap encoding name.
pub const ENCODING: &str = "VP9";
pub const CLOCK_RATE: u32 = 90_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Vp9Error {
    #[error("VP9 payload of {len} bytes ends inside its payload descriptor (needs {need})")]
    Truncated { len: usize, need: usize },
}

const I: u8 = 0x80;
const P: u8 = 0x40;
const L: u8 = 0x20;
const F: u8 = 0x10;
const B: u8 = 0x08;
const E: u8 = 0x04;
const V: u8 = 0x02;

/// Whether this packet starts a key frame: the beginning of a frame (B=1), not
/// inter-picture predicted (P=0) (RFC 9628 4.2), whose uncompressed header says
/// KEY_FRAME (VP9 bitstream 6.2).
pub fn starts_keyframe(payload: &[u8]) -> Result<bool, Vp9Error> {
    let truncated = |need| Vp9Error::Truncated {
        len: payload.len(),
        need,
    };
    let b0 = *payload.first().ok_or(truncated(1))?;
    if b0 & B == 0 || b0 & P != 0 {
        return Ok(false);
    }
    let at = descriptor_len(payload, b0).ok_or(truncated(payload.len() + 1))?;
    let header = *payload.get(at).ok_or(truncated(at + 1))?;
    Ok(header_is_keyframe(header))
}

/// Length of the payload descriptor (RFC 9628 4.2), None if it runs past the payload.
fn descriptor_len(p: &[u8], b0: u8) -> Option<usize> {
    let mut at = 1;
    if b0 & I != 0 {
        at += if *p.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if b0 & L != 0 {
        // Layer indices, and TL0PICIDX in non-flexible mode.
        at += if b0 & F != 0 { 1 } else { 2 };
    }
    if b0 & F != 0 && b0 & P != 0 {
        // Up to 3 reference indices, each with a "more follow" bit.
        for _ in 0..3 {
            let more = *p.get(at)? & 0x01 != 0;
            at += 1;
            if !more {
                break;
            }
        }
    }
    if b0 & V != 0 {
        let ss = *p.get(at)?;
        at += 1;
        let spatial_layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            at += 4 * spatial_layers;
        }
        if ss & 0x08 != 0 {
            let groups = *p.get(at)?;
            at += 1;
            for _ in 0..groups {
                let refs = usize::from((*p.get(at)? >> 2) & 0x03);
                at += 1 + refs;
            }
        }
    }
    (at <= p.len()).then_some(at)
}

/// Cuts one packet that is larger than `max_payload` into packets that fit (RFC 9628 4.2):
/// the descriptor on each, B (beginning of frame) only on the first, E (end of frame) only
/// on the last, the scalability structure only on the first. Packets that fit, or whose
/// descriptor cannot be read, are left whole.
pub fn split(payload: &Bytes, max_payload: usize, out: &mut Vec<Bytes>) {
    let whole = |out: &mut Vec<Bytes>| out.push(payload.clone());
    let Some(&b0) = payload.first() else {
        return whole(out);
    };
    // Without the scalability structure: what every fragment after the first repeats.
    let Some(prefix) = descriptor_len(payload, b0 & !V) else {
        return whole(out);
    };
    let Some(desc) = descriptor_len(payload, b0) else {
        return whole(out);
    };
    if payload.len() <= max_payload || max_payload <= desc {
        return whole(out);
    }
    let data = &payload[desc..];
    let first = max_payload - desc;
    let rest = max_payload - prefix;
    let count = 1 + data.len().saturating_sub(first).div_ceil(rest);
    let mut buf = BytesMut::with_capacity(payload.len() + count * prefix);
    let mut at = 0;
    for i in 0..count {
        let (head, size) = if i == 0 {
            (desc, first)
        } else {
            (prefix, rest)
        };
        let end = (at + size).min(data.len());
        let mut flags = b0 & !(B | E | V);
        if i == 0 {
            flags |= b0 & (B | V);
        }
        if i == count - 1 {
            flags |= b0 & E;
        }
        buf.extend_from_slice(&[flags]);
        buf.extend_from_slice(&payload[1..head]);
        buf.extend_from_slice(&data[at..end]);
        out.push(buf.split().freeze());
        at = end;
    }
}

/// The first byte of an uncompressed header: frame_marker (2 bits), the profile's two
/// bits (a reserved zero follows for profile 3), show_existing_frame, frame_type (0 = key).
fn header_is_keyframe(h: u8) -> bool {
    let profile = ((h >> 5) & 1) | (((h >> 4) & 1) << 1);
    let (show_existing, frame_type) = if profile == 3 {
        ((h >> 2) & 1, (h >> 1) & 1)
    } else {
        ((h >> 3) & 1, (h >> 2) & 1)
    };
    h >> 6 == 0b10 && show_existing == 0 && frame_type == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Profile 0 uncompressed headers: key frame, inter frame.
    const KEY: u8 = 0b1000_0000;
    const INTER: u8 = 0b1000_0100;

    #[test]
    fn descriptor_and_frame_header_decide() {
        // Chromium: I (15-bit picture ID), B, V with one spatial layer of given size and
        // no groups, then a key frame header.
        let chromium_key = [0x8a, 0x81, 0x02, 0x10, 0x02, 0x80, 0x01, 0x68, KEY, 0x49];
        assert_eq!(starts_keyframe(&chromium_key), Ok(true));
        // P=1: predicted.
        assert_eq!(starts_keyframe(&[0xc8, 0x05, INTER]), Ok(false));
        // B=0: a middle packet.
        assert_eq!(starts_keyframe(&[0x80, 0x05, KEY]), Ok(false));
        // ffmpeg: a bare B (and E) descriptor on every frame; the header tells them apart.
        assert_eq!(starts_keyframe(&[0x0c, KEY, 0x49]), Ok(true));
        assert_eq!(starts_keyframe(&[0x0c, INTER, 0x49]), Ok(false));
        // show_existing_frame: not a key frame.
        assert_eq!(starts_keyframe(&[0x0c, 0b1000_1000]), Ok(false));
    }

    #[test]
    fn oversize_packets_are_split_with_b_first_e_last_and_ss_once() {
        let mut p = vec![0x8e, 0x81, 0x02, 0x10, 0x02, 0x80, 0x01, 0x68, KEY];
        p.extend((0..3000u32).map(|i| i as u8));
        let p = Bytes::from(p);
        let mut out = Vec::new();
        split(&p, 1188, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| o.len() <= 1188));
        assert_eq!(out[0][0], 0x8a, "I, B and V on the first, no E");
        assert_eq!(out[1][0], 0x80, "only I in the middle");
        assert_eq!(out[2][0], 0x84, "I and E on the last");
        assert!(
            out.iter().all(|o| o[1..3] == [0x81, 0x02]),
            "picture ID on each"
        );
        let mut body = out[0][8..].to_vec();
        body.extend(out[1..].iter().flat_map(|o| o[3..].to_vec()));
        assert_eq!(body, p[8..]);
        assert_eq!(starts_keyframe(&out[0]), Ok(true));
    }

    #[test]
    fn truncated_descriptors_are_errors() {
        for p in [
            &[][..],
            &[0x08],
            &[0x88],
            &[0x8a, 0x05],
            &[0x0a, 0x10, 0x02],
        ] {
            assert!(starts_keyframe(p).is_err(), "{p:?}");
        }
    }
}
