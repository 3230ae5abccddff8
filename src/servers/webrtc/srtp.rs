//! SRTP protection in place, for the owned viewer transport: the caller keeps one reusable
//! buffer per viewer, `protect_rtp` encrypts the payload where it lies and appends the tag.
//! Nothing is allocated per packet (the per-SSRC rollover counters live in a small vector
//! reserved up front).
//!
//! * `AEAD_AES_128_GCM` (RFC 7714): AAD = the RTP header, IV = session salt XOR
//!   (00 00 | SSRC | ROC | SEQ), 16-byte tag; ring's AES-GCM.
//! * `AES_CM_128_HMAC_SHA1_80` (RFC 3711): AES-128 counter mode over the payload with
//!   IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16), then HMAC-SHA1 over
//!   header + encrypted payload + ROC, truncated to 10 bytes.
//!
//! Session keys come from the SRTP KDF (RFC 3711 4.3, AES-CM PRF, key derivation rate 0),
//! for GCM too (RFC 7714 11, with the 12-byte salt left-aligned as libsrtp does).

use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use sha1::Sha1;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;
type Aes128CtrCore = ctr::CtrCore<Aes128, ctr::flavors::Ctr128BE>;

const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_AUTH: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;

/// SRTP protection profiles we send (DTLS-SRTP names: `SRTP_AEAD_AES_128_GCM`,
/// `SRTP_AES128_CM_HMAC_SHA1_80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    AeadAes128Gcm,
    AesCm128HmacSha1_80,
}

impl Profile {
    /// Bytes `protect_rtp` appends.
    pub fn tag_len(self) -> usize {
        match self {
            Profile::AeadAes128Gcm => 16,
            Profile::AesCm128HmacSha1_80 => 10,
        }
    }

    /// Master salt length.
    pub fn salt_len(self) -> usize {
        match self {
            Profile::AeadAes128Gcm => 12,
            Profile::AesCm128HmacSha1_80 => 14,
        }
    }
}

/// Keys for one direction, from DTLS keying material (RFC 5764 4.2:
/// client_key|server_key|client_salt|server_salt; key 16 bytes, salt 12 bytes for GCM / 14 for CM).
#[derive(Clone)]
pub struct SrtpKeys {
    pub master_key: [u8; 16],
    pub master_salt: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("master salt is {got} bytes, this profile needs {want}")]
    SaltLength { want: usize, got: usize },
    #[error("not an RTP packet (version 2 header of {0} bytes cut short)")]
    BadHeader(usize),
    #[error("buffer of {have} bytes has no room for the {need}-byte protected packet")]
    BufferTooSmall { need: usize, have: usize },
    #[error("length {len} is past the end of the {cap}-byte buffer")]
    BadLength { len: usize, cap: usize },
    #[error("the rollover counter of SSRC {0:#010x} is exhausted: the session must be rekeyed")]
    RocExhausted(u32),
    #[error("encryption failed")]
    Crypto,
}

/// Rollover state of one SSRC we send.
#[derive(Debug, Clone, Copy)]
struct SsrcState {
    ssrc: u32,
    /// Highest sequence number sent (in send order, modulo wrap).
    last_seq: u16,
    roc: u32,
}

// One per sender, built once and never moved on the packet path: the size gap is harmless.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Gcm {
        key: LessSafeKey,
        salt: [u8; 12],
    },
    CmHmac {
        aes: Aes128,
        /// Keyed once; cloned per packet (a copy of the hash state, no key schedule).
        auth: Hmac<Sha1>,
        salt: [u8; 14],
    },
}

/// SRTP sender for one viewer and one direction; owns the per-SSRC rollover counters.
pub struct SrtpSender {
    cipher: Cipher,
    profile: Profile,
    ssrcs: Vec<SsrcState>,
}

/// SRTP KDF (RFC 3711 4.3.3, AES-CM PRF, kdr 0): `out.len()` bytes for `label`.
fn kdf(master_key: &[u8; 16], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let aes = Aes128::new(master_key.into());
    let mut x = [0u8; 16];
    x[..master_salt.len()].copy_from_slice(master_salt);
    x[7] ^= label;
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = x;
        block[14..].copy_from_slice(&(i as u16).to_be_bytes());
        aes.encrypt_block((&mut block).into());
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// Length of the RTP header at the start of `pkt` (fixed part, CSRCs, extension).
fn header_len(pkt: &[u8]) -> Result<usize, SrtpError> {
    if pkt.len() < 12 || pkt[0] >> 6 != 2 {
        return Err(SrtpError::BadHeader(pkt.len()));
    }
    let mut n = 12 + 4 * usize::from(pkt[0] & 0x0f);
    if pkt[0] & 0x10 != 0 {
        if pkt.len() < n + 4 {
            return Err(SrtpError::BadHeader(pkt.len()));
        }
        let words = u16::from_be_bytes([pkt[n + 2], pkt[n + 3]]);
        n += 4 + 4 * usize::from(words);
    }
    if pkt.len() < n {
        return Err(SrtpError::BadHeader(pkt.len()));
    }
    Ok(n)
}

impl SrtpSender {
    /// Derives the session keys (RFC 3711 4.3; RFC 7714 11 for GCM).
    pub fn new(profile: Profile, keys: &SrtpKeys) -> Result<Self, SrtpError> {
        let want = profile.salt_len();
        if keys.master_salt.len() != want {
            return Err(SrtpError::SaltLength {
                want,
                got: keys.master_salt.len(),
            });
        }
        let mut enc = [0u8; 16];
        kdf(
            &keys.master_key,
            &keys.master_salt,
            LABEL_ENCRYPTION,
            &mut enc,
        );
        let cipher = match profile {
            Profile::AeadAes128Gcm => {
                let mut salt = [0u8; 12];
                kdf(&keys.master_key, &keys.master_salt, LABEL_SALT, &mut salt);
                let key = UnboundKey::new(&AES_128_GCM, &enc).map_err(|_| SrtpError::Crypto)?;
                Cipher::Gcm {
                    key: LessSafeKey::new(key),
                    salt,
                }
            }
            Profile::AesCm128HmacSha1_80 => {
                let mut salt = [0u8; 14];
                kdf(&keys.master_key, &keys.master_salt, LABEL_SALT, &mut salt);
                let mut auth = [0u8; 20];
                kdf(&keys.master_key, &keys.master_salt, LABEL_AUTH, &mut auth);
                Cipher::CmHmac {
                    aes: Aes128::new((&enc).into()),
                    auth: <Hmac<Sha1> as Mac>::new_from_slice(&auth)
                        .map_err(|_| SrtpError::Crypto)?,
                    salt,
                }
            }
        };
        Ok(SrtpSender {
            cipher,
            profile,
            // A viewer gets a video and an audio SSRC, maybe RTX: no growth in practice.
            ssrcs: Vec::with_capacity(8),
        })
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The rollover counter for this packet. The first packet of an SSRC has ROC 0; the ROC
    /// goes up when the sequence number wraps (0xFFFF -> 0, or any jump back by more than
    /// half the space); a late packet from before the wrap keeps the old ROC.
    fn roc(&mut self, ssrc: u32, seq: u16) -> Result<u32, SrtpError> {
        let Some(st) = self.ssrcs.iter_mut().find(|s| s.ssrc == ssrc) else {
            self.ssrcs.push(SsrcState {
                ssrc,
                last_seq: seq,
                roc: 0,
            });
            return Ok(0);
        };
        let delta = seq.wrapping_sub(st.last_seq);
        if delta == 0 {
            return Ok(st.roc);
        }
        if delta < 0x8000 {
            // Forward.
            if seq < st.last_seq {
                st.roc = st.roc.checked_add(1).ok_or(SrtpError::RocExhausted(ssrc))?;
            }
            st.last_seq = seq;
            Ok(st.roc)
        } else if seq > st.last_seq {
            // Backward across the wrap: a packet from the previous cycle (before the first
            // cycle there is none; a receiver guesses ROC 0 there too).
            Ok(st.roc.saturating_sub(1))
        } else {
            Ok(st.roc)
        }
    }

    /// Protects the RTP packet in `buf[..len]` (header + payload) in place, appending the tag;
    /// returns the new length. `buf` must have room for the tag (16 bytes GCM, 10 bytes
    /// CM-HMAC-80). No allocation.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len > buf.len() {
            return Err(SrtpError::BadLength {
                len,
                cap: buf.len(),
            });
        }
        let hlen = header_len(&buf[..len])?;
        let tag_len = self.profile.tag_len();
        let need = len + tag_len;
        if need > buf.len() {
            return Err(SrtpError::BufferTooSmall {
                need,
                have: buf.len(),
            });
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let roc = self.roc(ssrc, seq)?;
        match &self.cipher {
            Cipher::Gcm { key, salt } => {
                // RFC 7714 8.1: 00 00 | SSRC | ROC | SEQ, XOR the session salt.
                let mut iv = [0u8; 12];
                iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
                iv[6..10].copy_from_slice(&roc.to_be_bytes());
                iv[10..12].copy_from_slice(&seq.to_be_bytes());
                for (b, s) in iv.iter_mut().zip(salt) {
                    *b ^= s;
                }
                let (header, rest) = buf.split_at_mut(hlen);
                let (payload, tail) = rest.split_at_mut(len - hlen);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&*header),
                        payload,
                    )
                    .map_err(|_| SrtpError::Crypto)?;
                tail[..tag_len].copy_from_slice(tag.as_ref());
            }
            Cipher::CmHmac { aes, auth, salt } => {
                // RFC 3711 4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
                let mut iv = [0u8; 16];
                iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
                iv[8..12].copy_from_slice(&roc.to_be_bytes());
                iv[12..14].copy_from_slice(&seq.to_be_bytes());
                for (b, s) in iv.iter_mut().zip(salt) {
                    *b ^= s;
                }
                let mut ctr =
                    Aes128Ctr::from_core(Aes128CtrCore::inner_iv_init(aes.clone(), (&iv).into()));
                ctr.apply_keystream(&mut buf[hlen..len]);
                let mut mac = auth.clone();
                mac.update(&buf[..len]);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                buf[len..need].copy_from_slice(&tag[..tag_len]);
            }
        }
        Ok(need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc_srtp::context::Context;
    use webrtc_srtp::protection_profile::ProtectionProfile;

    const PROFILES: [Profile; 2] = [Profile::AeadAes128Gcm, Profile::AesCm128HmacSha1_80];

    fn keys(profile: Profile) -> SrtpKeys {
        let mut master_key = [0u8; 16];
        for (i, b) in master_key.iter_mut().enumerate() {
            *b = 0x10 + i as u8 * 7;
        }
        SrtpKeys {
            master_key,
            master_salt: (0..profile.salt_len() as u8)
                .map(|i| 0xa0 ^ i.wrapping_mul(13))
                .collect(),
        }
    }

    fn theirs(profile: Profile) -> ProtectionProfile {
        match profile {
            Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            Profile::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        }
    }

    fn context(profile: Profile) -> Context {
        let k = keys(profile);
        Context::new(&k.master_key, &k.master_salt, theirs(profile), None, None).unwrap()
    }

    /// What the packet looks like.
    #[derive(Clone, Copy, Debug)]
    struct Shape {
        csrcs: usize,
        /// One-byte header extension (RFC 8285) with one 2-byte element.
        extension: bool,
        payload: usize,
    }

    fn packet(shape: Shape, seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80 | shape.csrcs as u8, 96 | 0x80];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(0x1234_5678u32.wrapping_add(u32::from(seq) * 3000)).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        for c in 0..shape.csrcs {
            p.extend_from_slice(&(0xc0c0_0000u32 + c as u32).to_be_bytes());
        }
        if shape.extension {
            p[0] |= 0x10;
            // 0xBEDE, 1 word: id 3 len 2 (value 0xab 0xcd), one byte of padding.
            p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x31, 0xab, 0xcd, 0x00]);
        }
        p.extend((0..shape.payload).map(|i| (i as u8).wrapping_mul(31) ^ seq as u8));
        p
    }

    fn protect(sender: &mut SrtpSender, plain: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 1500];
        buf[..plain.len()].copy_from_slice(plain);
        let n = sender.protect_rtp(&mut buf, plain.len()).unwrap();
        assert_eq!(n, plain.len() + sender.profile().tag_len());
        buf[..n].to_vec()
    }

    fn shapes() -> Vec<Shape> {
        let mut v = Vec::new();
        for payload in [0, 1, 1188] {
            for (csrcs, extension) in [(0, false), (2, false), (0, true), (3, true)] {
                v.push(Shape {
                    csrcs,
                    extension,
                    payload,
                });
            }
        }
        v
    }

    #[test]
    fn webrtc_srtp_decrypts_what_we_protect() {
        for profile in PROFILES {
            for shape in shapes() {
                let mut ours = SrtpSender::new(profile, &keys(profile)).unwrap();
                let mut dec = context(profile);
                for seq in [1000u16, 1001, 1002] {
                    let plain = packet(shape, seq, 0xdead_beef);
                    let protected = protect(&mut ours, &plain);
                    let hlen = header_len(&plain).unwrap();
                    assert_eq!(protected[..hlen], plain[..hlen], "header stays clear");
                    if shape.payload > 1 {
                        assert_ne!(protected[hlen..plain.len()], plain[hlen..], "encrypted");
                    }
                    let back = dec
                        .decrypt_rtp(&protected)
                        .unwrap_or_else(|e| panic!("{profile:?} {shape:?} seq {seq}: {e}"));
                    assert_eq!(&back[..], &plain[..], "{profile:?} {shape:?}");
                }
            }
        }
    }

    #[test]
    fn output_equals_webrtc_srtp_encrypt_rtp() {
        for profile in PROFILES {
            for shape in shapes() {
                let mut ours = SrtpSender::new(profile, &keys(profile)).unwrap();
                let mut enc = context(profile);
                // Across a wrap, two SSRCs interleaved.
                for seq in [65533u16, 65534, 65535, 0, 1, 2] {
                    for ssrc in [0x0102_0304, 0xfedc_ba98] {
                        let plain = packet(shape, seq, ssrc);
                        let mine = protect(&mut ours, &plain);
                        let reference = enc.encrypt_rtp(&plain).unwrap();
                        assert_eq!(mine, &reference[..], "{profile:?} {shape:?} seq {seq}");
                    }
                }
            }
        }
    }

    #[test]
    fn rollover_counter_increments_at_the_wrap() {
        let shape = Shape {
            csrcs: 1,
            extension: true,
            payload: 1188,
        };
        for profile in PROFILES {
            let mut ours = SrtpSender::new(profile, &keys(profile)).unwrap();
            let mut dec = context(profile);
            let mut at_wrap = Vec::new();
            for seq in (65530u16..=65535).chain(0..6) {
                let plain = packet(shape, seq, 42);
                let protected = protect(&mut ours, &plain);
                let back = dec
                    .decrypt_rtp(&protected)
                    .unwrap_or_else(|e| panic!("{profile:?} seq {seq}: {e}"));
                assert_eq!(&back[..], &plain[..]);
                if seq == 3 {
                    at_wrap = protected;
                }
            }
            // The same packet with ROC 0 (a fresh sender) is a different ciphertext and tag:
            // the wrap really moved the ROC to 1.
            let mut fresh = SrtpSender::new(profile, &keys(profile)).unwrap();
            let roc0 = protect(&mut fresh, &packet(shape, 3, 42));
            assert_ne!(roc0, at_wrap, "{profile:?}");
            assert_eq!(ours.ssrcs[0].roc, 1);
            // A late packet from before the wrap still uses ROC 0.
            let late = protect(&mut ours, &packet(shape, 65534, 42));
            let mut fresh = SrtpSender::new(profile, &keys(profile)).unwrap();
            assert_eq!(late, protect(&mut fresh, &packet(shape, 65534, 42)));
            assert_eq!(ours.ssrcs[0].roc, 1);
        }
    }

    #[test]
    fn a_flipped_byte_fails_to_decrypt() {
        let shape = Shape {
            csrcs: 2,
            extension: true,
            payload: 100,
        };
        for profile in PROFILES {
            let plain = packet(shape, 7, 99);
            let protected = protect(
                &mut SrtpSender::new(profile, &keys(profile)).unwrap(),
                &plain,
            );
            // Intact, it decrypts (so the failures below are the flips' doing).
            context(profile).decrypt_rtp(&protected).unwrap();
            let hlen = header_len(&plain).unwrap();
            // In the header's timestamp, the CSRC list, the extension, the payload, the tag.
            for at in [5, 13, hlen - 2, hlen + 50, protected.len() - 1] {
                let mut bad = protected.clone();
                bad[at] ^= 0x01;
                assert!(
                    context(profile).decrypt_rtp(&bad).is_err(),
                    "{profile:?}: flip at {at} accepted"
                );
            }
        }
    }

    #[test]
    fn refuses_bad_input() {
        let profile = Profile::AeadAes128Gcm;
        let mut s = SrtpSender::new(profile, &keys(profile)).unwrap();
        let plain = packet(
            Shape {
                csrcs: 0,
                extension: false,
                payload: 20,
            },
            1,
            1,
        );
        // No room for the tag.
        let mut buf = [0u8; 40];
        buf[..32].copy_from_slice(&plain);
        assert_eq!(
            s.protect_rtp(&mut buf, 32),
            Err(SrtpError::BufferTooSmall { need: 48, have: 40 })
        );
        // Not RTP, cut-short header, length past the buffer.
        let mut buf = [0u8; 100];
        assert!(matches!(
            s.protect_rtp(&mut buf, 20),
            Err(SrtpError::BadHeader(_))
        ));
        buf[0] = 0x8f; // 15 CSRCs, 72-byte header
        assert!(matches!(
            s.protect_rtp(&mut buf, 40),
            Err(SrtpError::BadHeader(_))
        ));
        assert!(matches!(
            s.protect_rtp(&mut buf, 101),
            Err(SrtpError::BadLength { .. })
        ));
        // Salt of the other profile's length.
        let wrong = keys(Profile::AesCm128HmacSha1_80);
        assert!(matches!(
            SrtpSender::new(profile, &wrong),
            Err(SrtpError::SaltLength { want: 12, got: 14 })
        ));
    }
}
