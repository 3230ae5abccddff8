//! AV1 over RTP (the AOM "RTP Payload Format for AV1", v1.0). Browsers' packets fit a
//! WebRTC MTU and pass through as they are; the aggregation header's N bit marks the first
//! packet of a coded video sequence, i.e. of a key frame a decoder can start from.

/// The rtpmap encoding name.
pub const ENCODING: &str = "AV1";
pub const CLOCK_RATE: u32 = 90_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Av1Error {
    #[error("empty AV1 RTP payload")]
    Empty,
    #[error("AV1 aggregation header says N=1 (new coded video sequence) on a packet that continues an OBU (Z=1)")]
    SequenceStartContinues,
}

/// Whether this packet starts a new coded video sequence (a key frame) (spec 4.4: N=1,
/// which cannot be set on a packet continuing an OBU from the previous one).
pub fn starts_keyframe(payload: &[u8]) -> Result<bool, Av1Error> {
    let h = *payload.first().ok_or(Av1Error::Empty)?;
    let (z, n) = (h & 0x80 != 0, h & 0x08 != 0);
    if z && n {
        return Err(Av1Error::SequenceStartContinues);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_n_bit_marks_a_sequence_start() {
        // W=1 N=1: one OBU element, new coded video sequence.
        assert_eq!(starts_keyframe(&[0x18, 0x0a, 0x0b]), Ok(true));
        assert_eq!(starts_keyframe(&[0x10, 0x32]), Ok(false));
        // Z=1 continues an OBU: a middle packet.
        assert_eq!(starts_keyframe(&[0x90, 0x32]), Ok(false));
        assert_eq!(
            starts_keyframe(&[0x98]),
            Err(Av1Error::SequenceStartContinues)
        );
        assert_eq!(starts_keyframe(&[]), Err(Av1Error::Empty));
    }
}
