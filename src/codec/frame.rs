//! What a codec hands the stream core and gets back: a frame (an access unit or an audio
//! frame) in the codec's own form, and the RTP payloads it becomes at a given size.

use bytes::Bytes;

/// One access unit or audio frame.
#[derive(Debug, Clone)]
pub enum Frame {
    /// H.264 or H.265: NAL units without start codes.
    Nals(Vec<Bytes>),
    /// A codec whose frame is one byte string: an audio frame, a VP8 or VP9 frame.
    Whole(Bytes),
}

impl Frame {
    /// Payload bytes, for counters and cache limits.
    pub fn len(&self) -> usize {
        match self {
            Frame::Nals(n) => n.iter().map(Bytes::len).sum(),
            Frame::Whole(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One RTP payload as readers send it: they write the header (their SSRC, sequence number
/// and payload type, the unit's timestamp) in front of it.
#[derive(Debug, Clone)]
pub struct RtpPayload {
    pub payload: Bytes,
    /// The RTP marker bit: last packet of an access unit (video), talkspurt start (audio).
    pub marker: bool,
}

/// How a track's frames become RTP: one per codec family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packetizer {
    H264,
    H265,
    /// AAC as RFC 3640 with these AU headers, or as LATM.
    Mpeg4Generic(super::mpeg4audio::generic::AuHeaders),
    Latm,
    /// One frame, one packet (audio).
    Single,
    /// VP8 and VP9, passed through packet by packet: a packet too large for a reader is
    /// cut into several with the payload descriptor on each.
    Vp8,
    Vp9,
    /// Codecs passed through packet by packet as they are (AV1, MPEG audio).
    ReceivedOnly,
}

impl Packetizer {
    /// Packetizes `frame` into payloads of at most `max_payload` bytes.
    pub fn packetize(self, frame: &Frame, max_payload: usize, out: &mut Vec<RtpPayload>) {
        match (self, frame) {
            (Packetizer::H264, Frame::Nals(nals)) => {
                super::h264::packetize_au(nals, max_payload, out)
            }
            (Packetizer::H265, Frame::Nals(nals)) => {
                super::h265::packetize_au(nals, max_payload, out)
            }
            (Packetizer::Mpeg4Generic(headers), Frame::Whole(au)) => {
                super::mpeg4audio::generic::packetize(au, headers, max_payload, out)
            }
            (Packetizer::Latm, Frame::Whole(au)) => {
                super::mpeg4audio::latm::packetize(au, max_payload, out)
            }
            (Packetizer::Vp8 | Packetizer::Vp9 | Packetizer::ReceivedOnly, Frame::Whole(_)) => {}
            (Packetizer::Single, Frame::Whole(b)) => out.push(RtpPayload {
                payload: b.clone(),
                marker: false,
            }),
            // A frame of the wrong form for its codec is never made by ingest.
            (Packetizer::H264 | Packetizer::H265, Frame::Whole(_)) | (_, Frame::Nals(_)) => {}
        }
    }

    /// Whether a received packet too large for a reader can be cut to size.
    pub fn splits_packets(self) -> bool {
        matches!(self, Packetizer::Vp8 | Packetizer::Vp9)
    }

    /// Cuts a received packet into payloads of at most `max_payload` bytes; the last keeps
    /// its marker bit.
    pub fn split(self, packet: &RtpPayload, max_payload: usize, out: &mut Vec<RtpPayload>) {
        let mut parts = Vec::new();
        match self {
            Packetizer::Vp8 => super::vp8::split(&packet.payload, max_payload, &mut parts),
            Packetizer::Vp9 => super::vp9::split(&packet.payload, max_payload, &mut parts),
            _ => parts.push(packet.payload.clone()),
        }
        let last = parts.len().saturating_sub(1);
        out.extend(
            parts
                .into_iter()
                .enumerate()
                .map(|(i, payload)| RtpPayload {
                    payload,
                    marker: i == last && packet.marker,
                }),
        );
    }
}
