//! H.265 over RTP (RFC 7798): how its NAL headers read and its parameter sets. Cameras
//! (Hikvision, Dahua, Axis) and encoders send it; the access units are made and cut back
//! into packets by the code it shares with H.264 ([`crate::codec::nal`]).
//!
//! Packets with a DONL field (sprop-max-don-diff > 0) are not read: no camera or encoder
//! in use sends them, and MediaMTX refuses them too.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::RtpPayload;
use super::nal::{self, NalCodec, NalRole, PacketKind, ParamStore};

pub mod dts;
mod params;
#[cfg(test)]
mod tests;

pub use params::{ParamSets, Pps, Sps};

pub type Reframer = nal::Reframer<H265>;

pub const ENCODING: &str = "H265";
pub const CLOCK_RATE: u32 = 90_000;

/// NAL unit and RTP packet types used here (H.265 table 7-1, RFC 7798 4.4).
pub mod nal_type {
    pub const BLA_W_LP: u8 = 16;
    pub const CRA: u8 = 21;
    pub const VPS: u8 = 32;
    pub const SPS: u8 = 33;
    pub const PPS: u8 = 34;
    pub const AUD: u8 = 35;
    pub const FD: u8 = 38;
    pub const AP: u8 = 48;
    pub const FU: u8 = 49;
    pub const PACI: u8 = 50;
}

/// Type of a NAL unit or RTP payload from its first header byte.
pub fn nal_type_of(header: u8) -> u8 {
    (header >> 1) & 0x3F
}

/// nuh_layer_id and TemporalId + 1 of a 2-byte header.
fn layer_and_tid(header: &[u8]) -> (u8, u8) {
    (((header[0] & 1) << 5) | (header[1] >> 3), header[1] & 7)
}

/// H.265's NAL syntax, for the shared depacketizer, packetizer and reframer.
#[derive(Debug)]
pub struct H265;

impl NalCodec for H265 {
    const NAME: &'static str = "H.265";
    const HEADER_LEN: usize = 2;
    type Params = ParamSets;

    fn packet_kind(header: &[u8]) -> PacketKind {
        match nal_type_of(header[0]) {
            0..=47 => PacketKind::Single,
            nal_type::AP => PacketKind::Aggregate,
            nal_type::FU => PacketKind::Fragment,
            _ => PacketKind::Unsupported,
        }
    }

    fn packet_type(header: &[u8]) -> u8 {
        nal_type_of(header[0])
    }

    fn packet_type_name(packet_type: u8) -> &'static str {
        match packet_type {
            nal_type::PACI => "PACI",
            _ => "unspecified",
        }
    }

    fn role(nal: &[u8]) -> NalRole {
        match nal_type_of(nal[0]) {
            // Not needed by decoders, and 48..=63 would read as RTP packet types to a
            // reader's depacketizer.
            nal_type::AUD | nal_type::FD | 41..=63 => NalRole::Drop,
            nal_type::VPS => NalRole::ParamSet(0),
            nal_type::SPS => NalRole::ParamSet(1),
            nal_type::PPS => NalRole::ParamSet(2),
            // IRAP pictures: BLA, IDR and CRA, where decoding can start.
            nal_type::BLA_W_LP..=nal_type::CRA => NalRole::Keyframe,
            0..=31 => NalRole::Picture,
            _ => NalRole::Other,
        }
    }

    fn fragment_nal_header(payload_header: &[u8], fu_header: u8, out: &mut BytesMut) {
        out.put_u8((payload_header[0] & 0x81) | ((fu_header & 0x3F) << 1));
        out.put_u8(payload_header[1]);
    }

    fn fragment_header(nal: &[u8], out: &mut BytesMut) -> u8 {
        out.put_u8((nal[0] & 0x81) | (nal_type::FU << 1));
        out.put_u8(nal[1]);
        nal_type_of(nal[0])
    }

    fn aggregate_header(nals: &[Bytes], out: &mut BytesMut) {
        // RFC 7798 4.4.2: F is set if any NAL's is; LayerId and TID are the lowest.
        let forbidden = nals.iter().fold(0, |f, n| f | (n[0] & 0x80));
        let (layer, tid) = nals
            .iter()
            .map(|n| layer_and_tid(n))
            .fold((63, 7), |(l, t), (nl, nt)| (l.min(nl), t.min(nt)));
        out.put_u8(forbidden | (nal_type::AP << 1) | (layer >> 5));
        out.put_u8(((layer & 0x1F) << 3) | tid);
    }
}

impl ParamStore for ParamSets {
    const KINDS: usize = 3;

    fn slot(&mut self, kind: usize) -> &mut Option<Bytes> {
        match kind {
            0 => &mut self.vps,
            1 => &mut self.sps,
            _ => &mut self.pps,
        }
    }

    fn sets(&self) -> impl Iterator<Item = &Bytes> {
        self.vps
            .iter()
            .chain(self.sps.iter())
            .chain(self.pps.iter())
    }
}

/// Packetizes one H.265 access unit into payloads of at most `max_payload` bytes.
pub fn packetize_au(nals: &[Bytes], max_payload: usize, out: &mut Vec<RtpPayload>) {
    nal::packetize_au::<H265>(nals, max_payload, out)
}
