//! VP8 over RTP (RFC 7741). Browsers' packets fit a WebRTC MTU and pass through as they
//! are; what the stream core needs from them is where a frame starts and whether it is a
//! key frame, read from the payload descriptor and the first byte of the frame header.

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
    let header = *payload.get(at).ok_or(truncated(at + 1))?;
    let partition_start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    Ok(partition_start && header & 0x01 == 0)
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
