//! Linear PCM (RFC 3551 4.5.11 `L16`, RFC 3190 `L24`, `L8`): interleaved big-endian
//! samples at the rtpmap's rate and channel count. Each packet is a run of samples, so it
//! passes through as it is.

/// The rtpmap names and their sample sizes in bits.
const ENCODINGS: [(&str, u8); 3] = [("L8", 8), ("L16", 16), ("L24", 24)];

/// RFC 3551's static payload types: L16 at 44.1 kHz, stereo and mono.
pub const STATIC_STEREO: u8 = 10;
pub const STATIC_MONO: u8 = 11;

/// Bits per sample of an rtpmap encoding name (upper case).
pub fn bit_depth(encoding: &str) -> Option<u8> {
    ENCODINGS
        .iter()
        .find(|(n, _)| *n == encoding)
        .map(|(_, b)| *b)
}

pub fn encoding(bit_depth: u8) -> &'static str {
    ENCODINGS
        .iter()
        .find(|(_, b)| *b == bit_depth)
        .map_or("L16", |(n, _)| n)
}

/// The static payload type for this format, if RFC 3551 gives it one.
pub fn static_payload_type(bit_depth: u8, clock_rate: u32, channels: u16) -> Option<u8> {
    match (bit_depth, clock_rate, channels) {
        (16, 44_100, 2) => Some(STATIC_STEREO),
        (16, 44_100, 1) => Some(STATIC_MONO),
        _ => None,
    }
}
