//! Unprotecting what a peer sends: SRTP and SRTCP with replay windows, and per-SSRC state
//! that exists only for SSRCs whose packets authenticated, a few per session.
//!
//! `webrtc-srtp` creates a context's state for an SSRC before it checks the packet's tag,
//! so a peer spraying random SSRCs would grow it without bound. Packets of an SSRC not yet
//! admitted are tried on a throwaway `probe` context, rebuilt now and then; only once one
//! authenticates is its SSRC admitted to the real context, replay window and all.

use bytes::Bytes;
use webrtc::srtp::context::Context;
use webrtc::srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc::srtp::protection_profile::ProtectionProfile;

use crate::config::SrtpProfile;

/// SSRCs admitted per direction and kind: audio, video, RTX and simulcast layers fit.
pub const MAX_SSRCS: usize = 16;
/// Failed probes after which the probe context (and what it holds) is rebuilt.
const PROBE_REBUILD: u32 = 64;
/// Packets of one SSRC that may arrive out of order and still be accepted (RFC 3711 3.3.2
/// asks for at least 64).
const REPLAY_WINDOW: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("SRTP context: {0}")]
    Context(String),
    #[error("{kind} from a new SSRC {ssrc:#010x} refused: {MAX_SSRCS} SSRCs already admitted")]
    TooManySsrcs { kind: &'static str, ssrc: u32 },
    #[error("{kind} packet of {len} bytes is too short to carry an SSRC")]
    Short { kind: &'static str, len: usize },
    #[error("SRTCP packet of {len} bytes; {profile} needs at least {min}")]
    ShortSrtcp {
        len: usize,
        min: usize,
        profile: &'static str,
    },
    #[error("SRTP packet refused before decryption: {0}")]
    Header(#[from] crate::media::rtp::RtpError),
    #[error("SRTCP packet with the E flag clear refused: {profile} SRTCP must be encrypted here")]
    UnencryptedSrtcp { profile: &'static str },
}

/// RTCP header with the sender SSRC, and the E flag + SRTCP index (RFC 3711 3.4).
const SRTCP_HEADER: usize = 8;
const SRTCP_INDEX: usize = 4;

pub struct Inbound {
    key: Vec<u8>,
    salt: Vec<u8>,
    ours: SrtpProfile,
    profile: ProtectionProfile,
    ctx: Context,
    probe: Context,
    failed_probes: u32,
    rtp_ssrcs: Vec<u32>,
    rtcp_ssrcs: Vec<u32>,
}

impl Inbound {
    pub fn new(key: &[u8], salt: &[u8], ours: SrtpProfile) -> Result<Inbound, InboundError> {
        let profile = ours.to_srtp();
        Ok(Inbound {
            key: key.to_vec(),
            salt: salt.to_vec(),
            ours,
            profile,
            ctx: Context::new(
                key,
                salt,
                profile,
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_replay_protection(REPLAY_WINDOW)),
            )
            .map_err(|e| InboundError::Context(e.to_string()))?,
            probe: Self::probe_context(key, salt, profile)?,
            failed_probes: 0,
            rtp_ssrcs: Vec::new(),
            rtcp_ssrcs: Vec::new(),
        })
    }

    fn probe_context(
        key: &[u8],
        salt: &[u8],
        profile: ProtectionProfile,
    ) -> Result<Context, InboundError> {
        Context::new(key, salt, profile, None, None)
            .map_err(|e| InboundError::Context(e.to_string()))
    }

    /// SRTP in: the RTP packet in the clear.
    pub fn unprotect_rtp(&mut self, pkt: &[u8]) -> Result<Bytes, InboundError> {
        let ssrc = ssrc_at(pkt, 8, "SRTP")?;
        crate::media::rtp::check_extensions(pkt)?;
        self.admit(ssrc, false, pkt)?;
        self.ctx
            .decrypt_rtp(pkt)
            .map_err(|e| InboundError::Context(e.to_string()))
    }

    /// SRTCP in: the compound RTCP packet in the clear.
    pub fn unprotect_rtcp(&mut self, pkt: &[u8]) -> Result<Bytes, InboundError> {
        // `webrtc-srtp` reads the SSRC, the SRTCP index and the tag without checking the
        // length first, and panics on a short packet.
        let min = SRTCP_HEADER + SRTCP_INDEX + self.ours.tag_len();
        if pkt.len() < min {
            return Err(InboundError::ShortSrtcp {
                len: pkt.len(),
                min,
                profile: self.ours.as_str(),
            });
        }
        // With the E flag clear, `webrtc-srtp`'s AES-CM path returns the packet without
        // checking its tag, so anyone could inject RTCP (BYE, PLI floods, forged reports).
        // Every peer we know encrypts SRTCP, so refuse such packets rather than own the
        // HMAC check. (The GCM path always authenticates.)
        // AES-CM puts E + index before the tag (RFC 3711 3.4).
        if self.ours == SrtpProfile::AesCm128HmacSha1_80
            && pkt[pkt.len() - self.ours.tag_len() - SRTCP_INDEX] & 0x80 == 0
        {
            return Err(InboundError::UnencryptedSrtcp {
                profile: self.ours.as_str(),
            });
        }
        let ssrc = ssrc_at(pkt, 4, "SRTCP")?;
        self.admit(ssrc, true, pkt)?;
        self.ctx
            .decrypt_rtcp(pkt)
            .map_err(|e| InboundError::Context(e.to_string()))
    }

    /// Ok once `ssrc` is admitted: already, or now because `pkt` authenticates.
    fn admit(&mut self, ssrc: u32, rtcp: bool, pkt: &[u8]) -> Result<(), InboundError> {
        let known = if rtcp {
            &self.rtcp_ssrcs
        } else {
            &self.rtp_ssrcs
        };
        if known.contains(&ssrc) {
            return Ok(());
        }
        let kind = if rtcp { "SRTCP" } else { "SRTP" };
        if known.len() >= MAX_SSRCS {
            return Err(InboundError::TooManySsrcs { kind, ssrc });
        }
        let tried = if rtcp {
            self.probe.decrypt_rtcp(pkt)
        } else {
            self.probe.decrypt_rtp(pkt)
        };
        if let Err(e) = tried {
            self.failed_probes += 1;
            if self.failed_probes >= PROBE_REBUILD {
                self.probe = Self::probe_context(&self.key, &self.salt, self.profile)?;
                self.failed_probes = 0;
            }
            return Err(InboundError::Context(e.to_string()));
        }
        if rtcp {
            self.rtcp_ssrcs.push(ssrc);
        } else {
            self.rtp_ssrcs.push(ssrc);
        }
        Ok(())
    }
}

fn ssrc_at(pkt: &[u8], at: usize, kind: &'static str) -> Result<u32, InboundError> {
    pkt.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(InboundError::Short {
            kind,
            len: pkt.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [7; 16];
    const SALT: [u8; 12] = [9; 12];
    const PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;

    fn sender() -> Context {
        Context::new(&KEY, &SALT, PROFILE.to_srtp(), None, None).expect("ctx")
    }

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(seq as u32 * 3000).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0x65; 40]);
        p
    }

    #[test]
    fn replays_are_refused_and_new_packets_pass() {
        let mut tx = sender();
        let mut rx = Inbound::new(&KEY, &SALT, PROFILE).expect("inbound");
        let first = tx.encrypt_rtp(&rtp(1, 10)).expect("enc");
        let second = tx.encrypt_rtp(&rtp(1, 11)).expect("enc");
        assert!(rx.unprotect_rtp(&first).is_ok());
        assert!(rx.unprotect_rtp(&second).is_ok());
        assert!(rx.unprotect_rtp(&second).is_err(), "a replay is refused");
        assert!(
            rx.unprotect_rtp(&first).is_err(),
            "the admitting packet too"
        );
    }

    #[test]
    fn forged_ssrcs_leave_no_state_and_real_ones_are_capped() {
        let mut tx = sender();
        let mut rx = Inbound::new(&KEY, &SALT, PROFILE).expect("inbound");
        for ssrc in 0..10_000u32 {
            let mut forged = rtp(ssrc, 1);
            forged.extend_from_slice(&[0; 16]);
            assert!(rx.unprotect_rtp(&forged).is_err());
        }
        assert!(
            rx.rtp_ssrcs.is_empty(),
            "nothing admitted without a valid tag"
        );
        for ssrc in 0..MAX_SSRCS as u32 {
            let p = tx.encrypt_rtp(&rtp(1000 + ssrc, 1)).expect("enc");
            assert!(rx.unprotect_rtp(&p).is_ok());
        }
        let extra = tx.encrypt_rtp(&rtp(5000, 1)).expect("enc");
        assert!(matches!(
            rx.unprotect_rtp(&extra),
            Err(InboundError::TooManySsrcs { .. })
        ));
        let more = tx.encrypt_rtp(&rtp(1000, 2)).expect("enc");
        assert!(rx.unprotect_rtp(&more).is_ok(), "admitted SSRCs go on");
    }

    #[test]
    fn short_packets_are_errors_not_panics() {
        for profile in [
            SrtpProfile::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm,
            SrtpProfile::AesCm128HmacSha1_80,
        ] {
            let (key, salt) = match profile {
                SrtpProfile::AeadAes256Gcm => (vec![7u8; 32], vec![9u8; 12]),
                SrtpProfile::AeadAes128Gcm => (vec![7; 16], vec![9; 12]),
                SrtpProfile::AesCm128HmacSha1_80 => (vec![7; 16], vec![9; 14]),
            };
            let mut rx = Inbound::new(&key, &salt, profile).expect("inbound");
            for len in 0..64 {
                let mut p = vec![0x80u8; len];
                if len > 1 {
                    p[1] = 200;
                }
                assert!(rx.unprotect_rtcp(&p).is_err(), "{len} bytes");
                assert!(rx.unprotect_rtp(&p).is_err(), "{len} bytes");
            }
        }
    }

    #[test]
    fn srtcp_replays_are_refused() {
        let mut tx = sender();
        let mut rx = Inbound::new(&KEY, &SALT, PROFILE).expect("inbound");
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 42];
        let p = tx.encrypt_rtcp(&rr).expect("enc");
        assert!(rx.unprotect_rtcp(&p).is_ok());
        assert!(
            rx.unprotect_rtcp(&p).is_err(),
            "a replayed SRTCP packet is refused"
        );
        let q = tx.encrypt_rtcp(&rr).expect("enc");
        assert!(rx.unprotect_rtcp(&q).is_ok());
    }

    #[test]
    fn aes_cm_srtcp_needs_the_e_flag_and_a_tag() {
        let profile = SrtpProfile::AesCm128HmacSha1_80;
        let salt = [9u8; 14];
        let mut tx = Context::new(&KEY, &salt, profile.to_srtp(), None, None).expect("ctx");
        let mut rx = Inbound::new(&KEY, &salt, profile).expect("inbound");
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 42];
        let real = tx.encrypt_rtcp(&rr).expect("enc");
        assert_eq!(&rx.unprotect_rtcp(&real).expect("real SRTCP")[..], &rr);
        // The same header, E flag clear, any tag: `webrtc-srtp` alone would accept it.
        let mut forged = rr.to_vec();
        forged.extend_from_slice(&[0x00, 0x00, 0x00, 0x07]);
        forged.extend_from_slice(&[0xa1; 10]);
        assert!(matches!(
            rx.unprotect_rtcp(&forged),
            Err(InboundError::UnencryptedSrtcp { .. })
        ));
    }
}
