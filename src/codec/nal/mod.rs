//! What H.264 (RFC 6184) and H.265 (RFC 7798) share on the wire: NAL units sent one per
//! packet, several in an aggregation packet (STAP-A, AP), or one across fragmentation units
//! (FU-A, FU). Depacketizing, packetizing and reframing are written once here; each codec
//! folder says how its NAL headers read by implementing [`NalCodec`].

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use bytes::{Bytes, BytesMut};

mod depacketize;
pub mod dts;
mod packetize;
mod reframe;

pub use depacketize::Depacketizer;
pub use packetize::{packetize_access_unit, packetize_au};
pub use reframe::Reframer;

/// Largest RTP payload we emit for WebRTC: leaves room for the RTP header, header
/// extensions and SRTP tag inside a 1280-byte-safe packet.
pub const MAX_PAYLOAD: usize = 1188;

/// Larger NALs are refused: no camera sends them, and reassembling them would let one
/// stream pin unbounded memory.
pub const MAX_NAL_SIZE: usize = 4 * 1024 * 1024;
/// An access unit may hold several large slices, but not without bound.
pub const MAX_AU_SIZE: usize = 4 * MAX_NAL_SIZE;
/// NAL units in one access unit (real encoders write a few, or a few hundred slices).
pub const MAX_AU_NALS: usize = 4096;
/// What a held NAL unit costs besides its bytes.
const NAL_OVERHEAD: usize = std::mem::size_of::<Bytes>();

/// Reordered packets up to this far behind are dropped as late; a larger backwards jump is
/// taken as a sender restart.
const MAX_MISORDER: i16 = 100;

/// What an RTP payload is, from its payload header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Single,
    Aggregate,
    Fragment,
    Unsupported,
}

/// What a NAL unit is to the reframer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalRole {
    /// Never sent on: access unit delimiters, filler, and types that would read as RTP
    /// packet headers to a reader's depacketizer.
    Drop,
    /// The parameter set of kind `n` (decoding order: VPS, SPS, PPS).
    ParamSet(usize),
    /// A coded slice of a picture a decoder can start from.
    Keyframe,
    /// Any other coded slice.
    Picture,
    Other,
}

/// How one codec's NAL and payload headers read.
pub trait NalCodec: std::fmt::Debug + 'static {
    const NAME: &'static str;
    /// Bytes of a NAL unit header, and of an RTP payload header (the same for both codecs).
    const HEADER_LEN: usize;
    type Params: ParamStore;

    /// `header` is at least `HEADER_LEN` bytes.
    fn packet_kind(header: &[u8]) -> PacketKind;
    fn packet_type(header: &[u8]) -> u8;
    fn packet_type_name(packet_type: u8) -> &'static str;
    /// `nal` is at least `HEADER_LEN` bytes.
    fn role(nal: &[u8]) -> NalRole;
    /// Writes the header of the NAL unit that a fragmentation unit starts.
    fn fragment_nal_header(payload_header: &[u8], fu_header: u8, out: &mut BytesMut);
    /// Writes the payload header of a fragmentation unit of `nal`, and returns its FU
    /// header's type bits.
    fn fragment_header(nal: &[u8], out: &mut BytesMut) -> u8;
    /// Writes the payload header of an aggregation packet of `nals`.
    fn aggregate_header(nals: &[Bytes], out: &mut BytesMut);
    /// Whether a coded slice is a B slice (the stream reorders frames).
    fn is_b_slice(_nal: &[u8]) -> bool {
        false
    }
}

/// A stream's parameter sets, one slot per kind, in decoding order.
pub trait ParamStore: Clone + std::fmt::Debug + Default + PartialEq {
    const KINDS: usize;
    fn slot(&mut self, kind: usize) -> &mut Option<Bytes>;
    fn sets(&self) -> impl Iterator<Item = &Bytes>;
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum NalError {
    #[error("empty RTP payload")]
    EmptyPayload,
    #[error("RTP payload of {len} bytes is shorter than its {need}-byte payload header")]
    HeaderTooShort { len: usize, need: usize },
    #[error("fragmentation unit (FU-A/FU) middle or end fragment without a start fragment")]
    FuWithoutStart,
    #[error("fragmentation unit (FU-A/FU) shorter than its header")]
    FuTooShort,
    #[error(
        "aggregation packet (STAP-A/AP) NAL size {len} at offset {at} exceeds the {remaining} \
         bytes left"
    )]
    AggregateLengthPastEnd {
        at: usize,
        len: usize,
        remaining: usize,
    },
    #[error("aggregation packet (STAP-A/AP) ends inside the 2-byte NAL size at offset {at}")]
    AggregateTruncatedSize { at: usize },
    #[error("unsupported {codec} RTP packet type {packet_type} ({name})")]
    UnsupportedPacketType {
        codec: &'static str,
        packet_type: u8,
        name: &'static str,
    },
    #[error("NAL unit of at least {size} bytes exceeds the {MAX_NAL_SIZE}-byte limit")]
    NalTooLarge { size: usize },
    #[error("access unit of at least {size} bytes exceeds the {MAX_AU_SIZE}-byte limit")]
    AuTooLarge { size: usize },
    #[error("bad parameter sets in the SDP: {0}")]
    BadSprop(String),
}

/// One access unit, as the reframer hands it on.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub timestamp: u32,
    /// Holds a picture a decoder can start from (with the parameter sets ahead of it).
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
    /// The access unit holds a keyframe.
    pub keyframe: bool,
}

/// Base64 for parameter sets in SDP fmtp values. Cameras frequently drop the '=' padding,
/// so accept it either way.
pub const SPROP_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A NAL unit's bytes without emulation prevention (the 3 of every 00 00 03).
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    rbsp
}
