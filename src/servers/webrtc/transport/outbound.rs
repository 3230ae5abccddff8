//! One outgoing RTP stream of one viewer: our SSRC, payload type and sequence numbers,
//! written in front of the path's shared payload in the viewer's reusable buffer, then
//! protected in place. This is all a viewer costs per packet besides the send.

use std::time::Instant;

use super::rtcp::{CryptoError, RtpProtector, SentCounts};
use crate::codec::frame::RtpPayload;
use crate::servers::webrtc::srtp::SrtpError;

/// The largest SRTP tag we append (AEAD 16 bytes; CM-HMAC-80 10).
pub const MAX_TAG: usize = 16;

pub struct Outbound {
    pub ssrc: u32,
    pub payload_type: u8,
    pub clock_rate: u32,
    seq: u16,
    pub sent: SentCounts,
}

impl Outbound {
    pub fn new(ssrc: u32, payload_type: u8, clock_rate: u32, first_seq: u16) -> Self {
        Outbound {
            ssrc,
            payload_type,
            clock_rate,
            seq: first_seq,
            sent: SentCounts::default(),
        }
    }

    /// Writes the packet into `buf` and protects it; returns the length to send. Nothing is
    /// allocated on the in-place profiles.
    pub fn write(
        &mut self,
        buf: &mut [u8],
        timestamp: u32,
        pkt: &RtpPayload,
        srtp: &mut RtpProtector,
    ) -> Result<usize, CryptoError> {
        let len = 12 + pkt.payload.len();
        if len + MAX_TAG > buf.len() {
            return Err(SrtpError::BufferTooSmall {
                need: len + MAX_TAG,
                have: buf.len(),
            }
            .into());
        }
        buf[0] = 0x80;
        buf[1] = (u8::from(pkt.marker) << 7) | self.payload_type;
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        buf[12..len].copy_from_slice(&pkt.payload);
        self.seq = self.seq.wrapping_add(1);
        let s = &mut self.sent;
        s.packets = s.packets.wrapping_add(1);
        s.octets = s.octets.wrapping_add(pkt.payload.len() as u32);
        s.last_rtp = timestamp;
        s.last_sent = Some(Instant::now());
        srtp.protect(buf, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::webrtc::srtp::{Profile, SrtpKeys, SrtpSender};
    use bytes::Bytes;

    #[test]
    fn writes_a_header_that_webrtc_srtp_decrypts() {
        let keys = SrtpKeys {
            master_key: [7; 16],
            master_salt: vec![9; 12],
        };
        let mut srtp =
            RtpProtector::InPlace(SrtpSender::new(Profile::AeadAes128Gcm, &keys).expect("sender"));
        let mut out = Outbound::new(0x1234_5678, 102, 90_000, 65535);
        let pkt = RtpPayload {
            marker: true,
            payload: Bytes::from_static(&[0x65, 1, 2, 3]),
        };
        let mut ctx = webrtc::srtp::context::Context::new(
            &keys.master_key,
            &keys.master_salt,
            webrtc::srtp::protection_profile::ProtectionProfile::AeadAes128Gcm,
            None,
            None,
        )
        .expect("context");
        let mut buf = [0u8; 1500];
        for want_seq in [65535u16, 0] {
            let n = out.write(&mut buf, 3000, &pkt, &mut srtp).expect("write");
            let plain = ctx.decrypt_rtp(&buf[..n]).expect("decrypts");
            assert_eq!(plain[1], 0x80 | 102);
            assert_eq!(u16::from_be_bytes([plain[2], plain[3]]), want_seq);
            assert_eq!(&plain[8..12], &0x1234_5678u32.to_be_bytes());
            assert_eq!(&plain[12..], &[0x65, 1, 2, 3]);
        }
        assert_eq!(out.sent.packets, 2);
        // A buffer without room for the tag is refused, not overrun.
        let mut small = [0u8; 20];
        assert!(out.write(&mut small, 3000, &pkt, &mut srtp).is_err());
    }
}
