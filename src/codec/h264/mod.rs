//! H.264 over RTP (RFC 6184): depacketizing camera streams into access units, and
//! packetizing access units at the size a kind of reader needs (once per stream).
//!
//! Cameras send whatever packet sizes and aggregation they like (single NAL,
//! STAP-A, FU-A, up to 64 KB per packet) and often send SPS/PPS only in the
//! SDP. Browsers need payloads that fit a WebRTC MTU and SPS/PPS in front of
//! every IDR, so [`Reframer`] reassembles access units and re-emits them.
//!
//! One file per seam: parameter sets (`params`), RTP in (`depacketize`), RTP out
//! (`packetize`), the per-stream pipeline (`reframe`), and WebRTC pass-through.

use bytes::Bytes;

mod depacketize;
mod packetize;
mod params;
pub mod passthrough;
mod reframe;
mod slice;
#[cfg(test)]
mod tests;

pub use depacketize::Depacketizer;
pub use packetize::{packetize_access_unit, packetize_au};
pub use params::ParamSets;
pub use reframe::Reframer;
pub use slice::is_b_slice;

/// Largest RTP payload we emit: leaves room for the RTP header, header
/// extensions and SRTP tag inside a 1280-byte-safe packet.
pub const MAX_PAYLOAD: usize = 1188;

/// Larger NALs are refused: no camera sends them, and reassembling them
/// would let one stream pin unbounded memory.
pub const MAX_NAL_SIZE: usize = 4 * 1024 * 1024;

/// An access unit may hold several large slices, but not without bound.
pub const MAX_AU_SIZE: usize = 4 * MAX_NAL_SIZE;
/// NAL units in one access unit (real encoders write a few, or a few hundred slices).
pub const MAX_AU_NALS: usize = 4096;
/// What a held NAL unit costs besides its bytes.
const NAL_OVERHEAD: usize = std::mem::size_of::<Bytes>();

/// FU-A needs 2 header bytes plus at least one data byte per fragment.
const MIN_PAYLOAD: usize = 3;

/// Reordered packets up to this far behind are dropped as late; a larger
/// backwards jump is taken as a sender restart.
const MAX_MISORDER: i16 = 100;

/// NAL unit and RTP packet types used here (RFC 6184 table 3).
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const FILLER: u8 = 12;
    pub const STAP_A: u8 = 24;
    pub const STAP_B: u8 = 25;
    pub const MTAP16: u8 = 26;
    pub const MTAP24: u8 = 27;
    pub const FU_A: u8 = 28;
    pub const FU_B: u8 = 29;
}

/// Type of a NAL unit or RTP payload from its first byte.
pub fn nal_type_of(header: u8) -> u8 {
    header & 0x1F
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum H264Error {
    #[error("empty H.264 RTP payload")]
    EmptyPayload,
    #[error("FU-A middle or end fragment without a start fragment")]
    FuAWithoutStart,
    #[error("FU-A packet shorter than its 2-byte header")]
    FuATooShort,
    #[error("STAP-A NAL size {len} at offset {at} exceeds the {remaining} bytes left")]
    StapALengthPastEnd {
        at: usize,
        len: usize,
        remaining: usize,
    },
    #[error("STAP-A ends inside the 2-byte NAL size at offset {at}")]
    StapATruncatedSize { at: usize },
    #[error("unsupported H.264 RTP packet type {0} ({name})", name = packet_type_name(*.0))]
    UnsupportedPacketType(u8),
    #[error("NAL unit of at least {size} bytes exceeds the {MAX_NAL_SIZE}-byte limit")]
    NalTooLarge { size: usize },
    #[error("access unit of at least {size} bytes exceeds the {MAX_AU_SIZE}-byte limit")]
    AuTooLarge { size: usize },
    #[error("bad sprop-parameter-sets: {0}")]
    BadSprop(String),
}

fn packet_type_name(packet_type: u8) -> &'static str {
    match packet_type {
        nal_type::STAP_B => "STAP-B",
        nal_type::MTAP16 => "MTAP16",
        nal_type::MTAP24 => "MTAP24",
        nal_type::FU_B => "FU-B",
        _ => "reserved",
    }
}

/// One access unit, as the reframer hands it on.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub timestamp: u32,
    /// Holds an IDR picture (with SPS and PPS ahead of it).
    pub keyframe: bool,
    pub nals: Vec<Bytes>,
}

/// One RTP packet passed through as it came (the caller adds the RTP header).
#[derive(Debug, Clone)]
pub struct OutPacket {
    pub payload: Bytes,
    pub timestamp: u32,
    /// Last packet of the access unit (the RTP marker bit).
    pub marker: bool,
    /// First packet of an access unit.
    pub au_start: bool,
    /// The access unit contains an IDR slice.
    pub keyframe: bool,
}
