//! MPEG-1/2 audio, layers I to III (MP3), over RTP (RFC 2250 3.5, `MPA`, static payload
//! type 14, 90 kHz clock). Each payload is a 4-byte header (the fragment offset) and
//! whole frames or a fragment of one, so packets pass through as they are.

pub const ENCODING: &str = "MPA";
pub const CLOCK_RATE: u32 = 90_000;
pub const STATIC_PAYLOAD_TYPE: u8 = 14;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpaError {
    #[error("MPEG audio RTP payload of {0} bytes is shorter than its 4-byte header")]
    Short(usize),
}

/// Whether a payload starts a frame (fragment offset 0).
pub fn starts_frame(payload: &[u8]) -> Result<bool, MpaError> {
    match payload {
        [_, _, hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo]) == 0),
        _ => Err(MpaError::Short(payload.len())),
    }
}
