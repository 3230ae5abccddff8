//! H.264 over RTP (RFC 6184): how its NAL headers read, its parameter sets, and the
//! WebRTC pass-through. Depacketizing camera streams into access units and packetizing them
//! at the size a kind of reader needs (once per stream) is shared with H.265 in
//! [`crate::codec::nal`].
//!
//! Cameras send whatever packet sizes and aggregation they like (single NAL, STAP-A, FU-A,
//! up to 64 KB per packet) and often send SPS/PPS only in the SDP. Browsers need payloads
//! that fit a WebRTC MTU and SPS/PPS in front of every IDR, so [`Reframer`] reassembles
//! access units and re-emits them.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::RtpPayload;
use super::nal::{self, NalCodec, NalRole, PacketKind, ParamStore};

pub mod dts;
mod params;
pub mod passthrough;
mod slice;
#[cfg(test)]
mod tests;

pub use super::nal::{AccessUnit, OutPacket, MAX_AU_NALS, MAX_AU_SIZE, MAX_NAL_SIZE, MAX_PAYLOAD};
pub use dts::DtsExtractor;
pub use params::{ParamSets, Sps};
pub use slice::is_b_slice;

pub type H264Error = nal::NalError;
pub type Depacketizer = nal::Depacketizer<H264>;
pub type Reframer = nal::Reframer<H264>;

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

/// H.264's NAL syntax, for the shared depacketizer, packetizer and reframer.
#[derive(Debug)]
pub struct H264;

impl NalCodec for H264 {
    const NAME: &'static str = "H.264";
    const HEADER_LEN: usize = 1;
    type Params = ParamSets;

    fn packet_kind(header: &[u8]) -> PacketKind {
        match nal_type_of(header[0]) {
            1..=23 => PacketKind::Single,
            nal_type::STAP_A => PacketKind::Aggregate,
            nal_type::FU_A => PacketKind::Fragment,
            _ => PacketKind::Unsupported,
        }
    }

    fn packet_type(header: &[u8]) -> u8 {
        nal_type_of(header[0])
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

    fn role(nal: &[u8]) -> NalRole {
        match nal_type_of(nal[0]) {
            // Decoders do not need them and they only cost bandwidth. Unspecified (0) and
            // RTP packet types (24..=31) unpacked from a STAP-A or FU-A: decoders ignore
            // them, and sent on as they are a reader's depacketizer would take them for an
            // aggregate or fragment header.
            nal_type::AUD | nal_type::FILLER | 0 | 24..=31 => NalRole::Drop,
            nal_type::SPS => NalRole::ParamSet(0),
            nal_type::PPS => NalRole::ParamSet(1),
            nal_type::IDR => NalRole::Keyframe,
            1..=4 => NalRole::Picture,
            _ => NalRole::Other,
        }
    }

    fn fragment_nal_header(payload_header: &[u8], fu_header: u8, out: &mut BytesMut) {
        out.put_u8((payload_header[0] & 0xE0) | nal_type_of(fu_header));
    }

    fn fragment_header(nal: &[u8], out: &mut BytesMut) -> u8 {
        out.put_u8((nal[0] & 0xE0) | nal_type::FU_A);
        nal_type_of(nal[0])
    }

    fn aggregate_header(nals: &[Bytes], out: &mut BytesMut) {
        // NRI of an aggregate is the highest NRI it carries (RFC 6184 5.7).
        let nri = nals.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
        out.put_u8(nri | nal_type::STAP_A);
    }

    fn is_b_slice(nal: &[u8]) -> bool {
        nal_type_of(nal[0]) == nal_type::SLICE && is_b_slice(nal)
    }
}

impl ParamStore for ParamSets {
    const KINDS: usize = 2;

    fn slot(&mut self, kind: usize) -> &mut Option<Bytes> {
        match kind {
            0 => &mut self.sps,
            _ => &mut self.pps,
        }
    }

    fn sets(&self) -> impl Iterator<Item = &Bytes> {
        self.sps.iter().chain(self.pps.iter())
    }
}

/// Packetizes one H.264 access unit into payloads of at most `max_payload` bytes.
pub fn packetize_au(nals: &[Bytes], max_payload: usize, out: &mut Vec<RtpPayload>) {
    nal::packetize_au::<H264>(nals, max_payload, out)
}

/// An H.264 access unit as the RTP packets a reader sends.
pub fn packetize_access_unit(au: &AccessUnit, max_payload: usize, out: &mut Vec<OutPacket>) {
    nal::packetize_access_unit::<H264>(au, max_payload, out)
}
