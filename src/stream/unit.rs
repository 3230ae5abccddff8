//! The unit of a stream: one access unit or audio frame with its timestamps, or one RTP
//! packet of an access unit passed through as it came. RTP for each kind of reader is made
//! from it at most once, by whichever reader of that kind gets to it first, and kept on it
//! for every other reader (and the GOP cache).

use std::sync::OnceLock;

use crate::codec::frame::{Frame, Packetizer, RtpPayload};

/// The RTP shapes readers take: each has its own payload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpFormat {
    /// WebRTC viewers: fits a 1280-byte-safe packet with extensions and the SRTP tag.
    WebRtc,
    /// RTSP readers: a 1500-byte Ethernet MTU less IP, UDP and RTP headers.
    Rtsp,
}

impl RtpFormat {
    pub const fn max_payload(self) -> usize {
        match self {
            RtpFormat::WebRtc => crate::codec::h264::MAX_PAYLOAD,
            RtpFormat::Rtsp => 1460,
        }
    }
}

/// A unit's RTP payloads: most units are one packet, which needs no allocation.
#[derive(Debug, Clone)]
pub enum Payloads {
    One(RtpPayload),
    Many(Box<[RtpPayload]>),
}

impl Payloads {
    pub fn as_slice(&self) -> &[RtpPayload] {
        match self {
            Payloads::One(p) => std::slice::from_ref(p),
            Payloads::Many(p) => p,
        }
    }

    fn from_vec(mut v: Vec<RtpPayload>) -> Self {
        if v.len() == 1 {
            if let Some(p) = v.pop() {
                return Payloads::One(p);
            }
        }
        Payloads::Many(v.into_boxed_slice())
    }

    fn largest(&self) -> usize {
        self.as_slice()
            .iter()
            .map(|p| p.payload.len())
            .max()
            .unwrap_or(0)
    }

    fn bytes(&self) -> usize {
        self.as_slice().iter().map(|p| p.payload.len()).sum()
    }
}

#[derive(Debug)]
pub struct Unit {
    /// Index into the stream's tracks.
    pub track: u8,
    /// Presentation time in ticks of the track's clock, continuous across wraps and source
    /// restarts. Its low 32 bits are the RTP timestamp readers send.
    pub pts: i64,
    /// Decoding time, same clock; equal to `pts` unless frames are reordered (B-frames).
    pub dts: i64,
    /// Wall-clock capture time (NTP format) from the publisher's RTCP sender reports.
    pub ntp: Option<u64>,
    /// Belongs to an access unit a decoder can start from.
    pub keyframe: bool,
    /// First unit of its access unit: where a reader may start or resume.
    pub au_start: bool,
    /// The access unit or frame. None on a packet passed through ahead of the rest of
    /// its access unit.
    pub frame: Option<Frame>,
    packetizer: Packetizer,
    /// The packets as received, when they are passed on as they are.
    received: Option<Payloads>,
    received_largest: usize,
    webrtc: OnceLock<Payloads>,
    rtsp: OnceLock<Payloads>,
}

impl Unit {
    /// A whole access unit or frame; RTP is made from it when a reader asks.
    pub fn frame(
        track: u8,
        pts: i64,
        keyframe: bool,
        frame: Frame,
        packetizer: Packetizer,
    ) -> Self {
        Self::new(track, pts, keyframe, true, None, Some(frame), packetizer)
    }

    /// RTP payloads passed on as they came, with the frame they make if it is known.
    pub fn received(
        track: u8,
        pts: i64,
        keyframe: bool,
        au_start: bool,
        received: Payloads,
        frame: Option<Frame>,
        packetizer: Packetizer,
    ) -> Self {
        Self::new(
            track,
            pts,
            keyframe,
            au_start,
            Some(received),
            frame,
            packetizer,
        )
    }

    fn new(
        track: u8,
        pts: i64,
        keyframe: bool,
        au_start: bool,
        received: Option<Payloads>,
        frame: Option<Frame>,
        packetizer: Packetizer,
    ) -> Self {
        Unit {
            track,
            pts,
            dts: pts,
            ntp: None,
            keyframe,
            au_start,
            frame,
            packetizer,
            received_largest: received.as_ref().map_or(0, Payloads::largest),
            received,
            webrtc: OnceLock::new(),
            rtsp: OnceLock::new(),
        }
    }

    pub fn starts_keyframe(&self) -> bool {
        self.au_start && self.keyframe
    }

    /// The RTP timestamp readers send.
    pub fn rtp_timestamp(&self) -> u32 {
        self.pts as u32
    }

    /// The payloads a reader of `format` sends: the received ones when they fit, else
    /// made from the frame once for all readers of the format.
    pub fn rtp(&self, format: RtpFormat) -> &[RtpPayload] {
        if let Some(r) = &self.received {
            let fits = self.received_largest <= format.max_payload();
            if fits || (self.frame.is_none() && !self.packetizer.splits_packets()) {
                return r.as_slice();
            }
        }
        let cell = match format {
            RtpFormat::WebRtc => &self.webrtc,
            RtpFormat::Rtsp => &self.rtsp,
        };
        cell.get_or_init(|| {
            let mut out = Vec::new();
            match (&self.frame, &self.received) {
                (Some(f), _) => self.packetizer.packetize(f, format.max_payload(), &mut out),
                (None, Some(r)) => {
                    for p in r.as_slice() {
                        self.packetizer.split(p, format.max_payload(), &mut out);
                    }
                }
                (None, None) => {}
            }
            Payloads::from_vec(out)
        })
        .as_slice()
    }

    /// Payload bytes held, for counters and cache limits.
    pub fn size(&self) -> usize {
        match (&self.received, &self.frame) {
            (Some(r), _) => r.bytes(),
            (None, Some(f)) => f.len(),
            (None, None) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn rtp_is_made_once_per_format_and_fits_it() {
        let nal = {
            let mut v = vec![0x65];
            v.extend(std::iter::repeat_n(9u8, 4000));
            Bytes::from(v)
        };
        let u = Unit::frame(0, 90_000, true, Frame::Nals(vec![nal]), Packetizer::H264);
        let web = u.rtp(RtpFormat::WebRtc);
        assert!(web.len() >= 3 && web.iter().all(|p| p.payload.len() <= 1188));
        assert!(web.last().is_some_and(|p| p.marker));
        // The second reader gets the very same payloads.
        assert_eq!(
            u.rtp(RtpFormat::WebRtc)[0].payload.as_ptr(),
            web[0].payload.as_ptr()
        );
        let rtsp = u.rtp(RtpFormat::Rtsp);
        assert!(rtsp.len() < web.len() && rtsp.iter().all(|p| p.payload.len() <= 1460));
    }

    #[test]
    fn received_packets_pass_untouched_when_they_fit() {
        let p = Bytes::from_static(&[0x41, 1, 2, 3]);
        let one = Payloads::One(RtpPayload {
            payload: p.clone(),
            marker: true,
        });
        let u = Unit::received(1, (1 << 32) + 5, false, true, one, None, Packetizer::H264);
        assert_eq!(u.rtp(RtpFormat::Rtsp)[0].payload.as_ptr(), p.as_ptr());
        assert_eq!(u.rtp(RtpFormat::WebRtc)[0].payload.as_ptr(), p.as_ptr());
        assert_eq!(u.rtp_timestamp(), 5);
        assert_eq!(u.size(), 4);
    }
}
