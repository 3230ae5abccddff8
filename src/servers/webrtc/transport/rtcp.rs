//! Per-session SRTP state and the RTCP a media server owes its peers: sender reports to
//! viewers, receiver reports and keyframe requests to publishers, and keyframe requests
//! read from viewers.
//!
//! Media we send goes through `SrtpSender` (in place, no allocation). RTCP and a
//! publisher's inbound RTP are a few packets per second per session, or one session per
//! path, and go through `webrtc-srtp`'s `Context`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::reception_report::ReceptionReport;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::srtp::context::Context;

use super::dtls::Keys;
use super::inbound::{Inbound, InboundError};
use crate::config::SrtpProfile;
use crate::servers::webrtc::srtp::{Profile, SrtpError, SrtpKeys, SrtpSender};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("SRTP: {0}")]
    Srtp(#[from] SrtpError),
    #[error("SRTP context: {0}")]
    Context(String),
    #[error("RTCP: {0}")]
    Rtcp(String),
    #[error("{0}")]
    Inbound(#[from] InboundError),
}

/// Protects RTP we send: in place for the profiles `SrtpSender` implements, through
/// `webrtc-srtp` (which allocates) for AES-256-GCM.
// One per session, built once and never moved on the packet path: the size gap is harmless.
#[allow(clippy::large_enum_variant)]
pub enum RtpProtector {
    InPlace(SrtpSender),
    Context(Box<Context>),
}

impl RtpProtector {
    /// Protects `buf[..len]`; returns the protected length. `buf` keeps room for the tag.
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, CryptoError> {
        match self {
            RtpProtector::InPlace(s) => Ok(s.protect_rtp(buf, len)?),
            RtpProtector::Context(c) => {
                let out = c
                    .encrypt_rtp(&buf[..len])
                    .map_err(|e| CryptoError::Context(e.to_string()))?;
                if out.len() > buf.len() {
                    return Err(SrtpError::BufferTooSmall {
                        need: out.len(),
                        have: buf.len(),
                    }
                    .into());
                }
                buf[..out.len()].copy_from_slice(&out);
                Ok(out.len())
            }
        }
    }
}

/// Both directions of a session's SRTP.
pub struct Crypto {
    pub profile: SrtpProfile,
    pub rtp_out: RtpProtector,
    /// SRTCP out, and SRTP/SRTCP in.
    out_ctx: Context,
    inbound: Inbound,
}

impl Crypto {
    pub fn new(keys: &Keys) -> Result<Crypto, CryptoError> {
        let ctx = |key: &[u8], salt: &[u8]| {
            Context::new(key, salt, keys.profile.to_srtp(), None, None)
                .map_err(|e| CryptoError::Context(e.to_string()))
        };
        let in_place = match keys.profile {
            SrtpProfile::AeadAes128Gcm => Some(Profile::AeadAes128Gcm),
            SrtpProfile::AesCm128HmacSha1_80 => Some(Profile::AesCm128HmacSha1_80),
            SrtpProfile::AeadAes256Gcm => None,
        };
        let rtp_out = match (in_place, <[u8; 16]>::try_from(keys.local_key.as_slice())) {
            (Some(p), Ok(master_key)) => RtpProtector::InPlace(SrtpSender::new(
                p,
                &SrtpKeys {
                    master_key,
                    master_salt: keys.local_salt.clone(),
                },
            )?),
            _ => RtpProtector::Context(Box::new(ctx(&keys.local_key, &keys.local_salt)?)),
        };
        Ok(Crypto {
            profile: keys.profile,
            rtp_out,
            out_ctx: ctx(&keys.local_key, &keys.local_salt)?,
            inbound: Inbound::new(&keys.remote_key, &keys.remote_salt, keys.profile)?,
        })
    }

    /// Marshals and protects RTCP packets as one compound packet.
    pub fn protect_rtcp(
        &mut self,
        packets: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>],
    ) -> Result<Bytes, CryptoError> {
        let plain =
            webrtc::rtcp::packet::marshal(packets).map_err(|e| CryptoError::Rtcp(e.to_string()))?;
        self.out_ctx
            .encrypt_rtcp(&plain)
            .map_err(|e| CryptoError::Context(e.to_string()))
    }

    /// Unprotects an inbound RTP packet.
    pub fn unprotect_rtp(&mut self, pkt: &[u8]) -> Result<Bytes, CryptoError> {
        Ok(self.inbound.unprotect_rtp(pkt)?)
    }

    /// Unprotects an inbound compound RTCP packet; read it with `media::rtcp`.
    pub fn unprotect_rtcp(&mut self, pkt: &[u8]) -> Result<Bytes, CryptoError> {
        Ok(self.inbound.unprotect_rtcp(pkt)?)
    }
}

pub use crate::media::rtp::is_rtcp;

/// NTP time (RFC 3550 4): seconds since 1900 in the high 32 bits.
pub fn ntp_now() -> u64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = since_unix.as_secs() + 2_208_988_800;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// What a sender report says about one outgoing SSRC.
#[derive(Debug, Default, Clone, Copy)]
pub struct SentCounts {
    pub packets: u32,
    pub octets: u32,
    /// RTP timestamp of the newest packet, and when it went out.
    pub last_rtp: u32,
    pub last_sent: Option<std::time::Instant>,
}

/// A sender report mapping "now" to the RTP clock, extrapolated from the newest packet.
pub fn sender_report(ssrc: u32, clock_rate: u32, c: &SentCounts) -> SenderReport {
    let elapsed = c.last_sent.map_or(Duration::ZERO, |t| t.elapsed());
    let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)) as u32;
    SenderReport {
        ssrc,
        ntp_time: ntp_now(),
        rtp_time: c.last_rtp.wrapping_add(ticks),
        packet_count: c.packets,
        octet_count: c.octets,
        ..Default::default()
    }
}

pub fn pli(media_ssrc: u32) -> PictureLossIndication {
    PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    }
}

/// Receive statistics for one incoming SSRC (RFC 3550 A.3), enough for a receiver report.
#[derive(Debug, Default, Clone)]
pub struct ReceivedStats {
    pub ssrc: u32,
    base_seq: Option<u32>,
    /// Highest extended sequence number.
    max_ext: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Middle 32 bits of the last SR's NTP time, and when it came.
    last_sr: u32,
    last_sr_at: Option<std::time::Instant>,
}

impl ReceivedStats {
    pub fn new(ssrc: u32) -> Self {
        ReceivedStats {
            ssrc,
            ..Default::default()
        }
    }

    pub fn packet(&mut self, seq: u16) {
        self.received = self.received.wrapping_add(1);
        let Some(_) = self.base_seq else {
            self.base_seq = Some(u32::from(seq));
            self.max_ext = u32::from(seq);
            return;
        };
        let max = self.max_ext as u16;
        let delta = seq.wrapping_sub(max);
        if delta != 0 && delta < 0x8000 {
            let cycles = self.max_ext & 0xffff_0000;
            let wrapped = if seq < max { 0x1_0000 } else { 0 };
            self.max_ext = cycles.wrapping_add(wrapped) | u32::from(seq);
        }
    }

    pub fn sender_report(&mut self, ntp_time: u64) {
        self.last_sr = (ntp_time >> 16) as u32;
        self.last_sr_at = Some(std::time::Instant::now());
    }

    /// The report block, and the interval counters advanced.
    pub fn report(&mut self) -> Option<ReceptionReport> {
        let base = self.base_seq?;
        let expected = self.max_ext.wrapping_sub(base).wrapping_add(1);
        let lost = expected.saturating_sub(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let delay = self
            .last_sr_at
            .map_or(0, |t| (t.elapsed().as_secs_f64() * 65536.0) as u32);
        Some(ReceptionReport {
            ssrc: self.ssrc,
            fraction_lost,
            total_lost: lost.min(0x7f_ffff),
            last_sequence_number: self.max_ext,
            jitter: 0,
            last_sender_report: self.last_sr,
            delay,
        })
    }
}

pub fn receiver_report(reports: Vec<ReceptionReport>) -> ReceiverReport {
    ReceiverReport {
        ssrc: 1,
        reports,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_stats_count_loss_across_the_wrap() {
        let mut s = ReceivedStats::new(7);
        for seq in (65530u16..=65535).chain(0..10) {
            if seq != 3 {
                s.packet(seq);
            }
        }
        let r = s.report().expect("report");
        assert_eq!(r.last_sequence_number, 0x1_0000 + 9);
        assert_eq!(r.total_lost, 1);
        assert!(r.fraction_lost > 0);
        // Nothing new: the next interval loses nothing.
        assert_eq!(s.report().expect("report").fraction_lost, 0);
        // Late and duplicate packets do not move the highest sequence number back.
        s.packet(65534);
        assert_eq!(
            s.report().expect("report").last_sequence_number,
            0x1_0000 + 9
        );
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 206]));
        assert!(!is_rtcp(&[0x80, 96]));
        assert!(!is_rtcp(&[0x80, 0x80 | 111]));
        assert!(!is_rtcp(&[0x80]));
    }
}
