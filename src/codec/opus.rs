//! Opus over RTP (RFC 7587): 48 kHz clock, one frame per packet, passed through as it is.
//! The rtpmap always says 2 channels; whether the stream is stereo is in `sprop-stereo`.

use super::sdp::MediaDesc;

/// As RFC 7587 spells it; rtpmap names are compared without case.
pub const ENCODING: &str = "opus";
pub const CLOCK_RATE: u32 = 48_000;

/// The channel count a media description gives: 1 with `sprop-stereo=0`, or with `/1` in
/// the rtpmap (some senders write that instead), else 2.
pub fn channels(m: &MediaDesc) -> u16 {
    let mono = m.channels == Some(1) || m.fmtp_param("sprop-stereo") == Some("0");
    if mono {
        1
    } else {
        2
    }
}

/// The rtpmap channel count and fmtp of a DESCRIBE answer, so a mono track reads back as
/// mono.
pub fn describe(channels: u16) -> (u16, Vec<(String, String)>) {
    let stereo = u8::from(channels > 1).to_string();
    (channels.max(2), vec![("sprop-stereo".into(), stereo)])
}
