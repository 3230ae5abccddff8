//! G.722 (ITU-T G.722, RFC 3551 4.5.2): 16 kHz wideband audio whose RTP clock runs at
//! 8000 Hz for historical reasons; static payload type 9, mono, one frame per packet.

/// The RTP clock (not the sampling rate, which is 16 kHz).
pub const CLOCK_RATE: u32 = 8000;
pub const STATIC_PAYLOAD_TYPE: u8 = 9;
pub const ENCODING: &str = "G722";
