//! VP8 over RTP (RFC 7741). Browsers' packets fit a WebRTC MTU and pass through as they
//! are; what the stream core needs from them is where a frame starts and whether it is a
//! key frame, read from the payload descriptor and the first byte of the frame header.

use bytes::{Bytes, BytesMut};

/// The rtpmap encoding name.
pub const ENCODING: &str = "VP8";
pub const CLOCK_RATE: u32 = 90_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    #[error("VP8 payload of {len} bytes ends inside its {need}-byte payload descriptor")]
    Truncated { len: usize, need: usize },
}

/// Whether this packet starts a key frame: the start of partition 0 (S=1, PID=0) with the
/// frame tag's inverse key frame flag clear (RFC 7741 4.2, 4.3).
pub fn starts_keyframe(payload: &[u8]) -> Result<bool, Vp8Error> {
    let at = descriptor_len(payload)?;
    let header = *payload.get(at).ok_or(Vp8Error::Truncated {
        len: payload.len(),
        need: at + 1,
    })?;
    let partition_start = payload[0] & 0x10 != 0 && payload[0] & 0x07 == 0;
    Ok(partition_start && header & 0x01 == 0)
}

/// Length of the payload descriptor (RFC 7741 4.2).
fn descriptor_len(payload: &[u8]) -> Result<usize, Vp8Error> {
    let truncated = |need| Vp8Error::Truncated {
        len: payload.len(),
        need,
    };
    let b0 = *payload.first().ok_or(truncated(1))?;
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(1).ok_or(truncated(2))?;
        at = 2;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits, the M bit says which.
            let pid = *payload.get(at).ok_or(truncated(at + 1))?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    if at > payload.len() {
        return Err(truncated(at));
    }
    Ok(at)
}

/// Cuts one packet that is larger than `max_payload` into packets that fit: the same
/// descriptor on each, with S (start of partition) only on the first. Packets that fit,
/// or whose descriptor cannot be read, are left whole.
pub fn split(payload: &Bytes, max_payload: usize, out: &mut Vec<Bytes>) {
    let Ok(desc) = descriptor_len(payload) else {
        out.push(payload.clone());
        return;
    };
    if payload.len() <= max_payload || max_payload <= desc {
        out.push(payload.clone());
        return;
    }
    let mut buf =
        BytesMut::with_capacity(payload.len() + 2 * desc * (payload.len() / max_payload + 1));
    for (i, chunk) in payload[desc..].chunks(max_payload - desc).enumerate() {
        buf.extend_from_slice(&payload[..desc]);
        if i > 0 {
            let first = buf.len() - desc;
            buf[first] &= !0x10;
        }
        buf.extend_from_slice(chunk);
        out.push(buf.split().freeze());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_delta_frames_from_chromium_style_descriptors() {
        // X=1 S=1 PID=0; I=1 with a 15-bit picture ID; frame tag with P=0 (key frame).
        assert_eq!(
            starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x10, 1, 2]),
            Ok(true)
        );
        // Same, P=1: a delta frame.
        assert_eq!(
            starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x11, 1, 2]),
            Ok(false)
        );
        // Not the start of partition 0: a continuation, never a key frame start.
        assert_eq!(starts_keyframe(&[0x80, 0x80, 0x81, 0x23, 0x10]), Ok(false));
        // No extension byte: ffmpeg's minimal descriptor.
        assert_eq!(starts_keyframe(&[0x10, 0x10, 0x02, 0x00]), Ok(true));
    }

    #[test]
    fn oversize_packets_are_split_with_the_descriptor_on_each() {
        let mut p = vec![0x90, 0x80, 0x81, 0x23, 0x10];
        p.extend((0..3000u32).map(|i| i as u8));
        let p = Bytes::from(p);
        let mut out = Vec::new();
        split(&p, 1188, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| o.len() <= 1188 && o[1..4] == p[1..4]));
        assert_eq!(out[0][0], 0x90, "S on the first");
        assert!(
            out[1..].iter().all(|o| o[0] == 0x80),
            "S cleared on the rest"
        );
        let body: Vec<u8> = out.iter().flat_map(|o| o[4..].to_vec()).collect();
        assert_eq!(body, p[4..]);
        assert_eq!(starts_keyframe(&out[0]), Ok(true));
        out.clear();
        split(&Bytes::from_static(&[0x10, 0x10, 1]), 1188, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn truncated_descriptors_are_errors() {
        for p in [
            &[][..],
            &[0x90],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x81, 0x23],
            &[0x10],
        ] {
            assert!(starts_keyframe(p).is_err(), "{p:?}");
        }
    }
}
