//! Reading the RTCP a peer sends (RFC 3550 6, RFC 4585 6.3): a compound packet walked with
//! every length checked, keeping only what the server acts on.
//!
//! Owned rather than taken from the `rtcp` crate, whose unmarshalling panics on some
//! malformed packets (a generic NACK with a short FCI, found by the `peer_in` fuzz target);
//! a panic there ends the whole session. Outgoing RTCP is still built with that crate.

/// What one packet of a compound RTCP packet says, as far as the server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpItem {
    /// A sender report: the NTP and RTP times of one instant of `ssrc`'s clock.
    SenderReport { ssrc: u32, ntp: u64, rtp_time: u32 },
    /// A receiver report (or the reception blocks of a sender report) from `ssrc`.
    ReceiverReport { ssrc: u32, blocks: u8 },
    /// Picture loss indication (RFC 4585 6.3.1) for `media_ssrc`.
    Pli { media_ssrc: u32 },
    /// Full intra request (RFC 5104 4.3.1).
    Fir,
    /// Anything else, well formed: SDES, BYE, APP, NACK, REMB, ...
    Other { packet_type: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("RTCP packet at byte {at}: only {left} bytes left, a header needs 4")]
    Truncated { at: usize, left: usize },
    #[error("RTCP packet at byte {at}: version {version}, not 2")]
    Version { at: usize, version: u8 },
    #[error("RTCP packet at byte {at}: length field says {len} bytes, {left} are left")]
    Length { at: usize, len: usize, left: usize },
    #[error("RTCP packet type {packet_type} at byte {at}: {len} bytes is too short for it")]
    Short {
        at: usize,
        packet_type: u8,
        len: usize,
    },
    #[error("RTCP compound packet is empty")]
    Empty,
}

const SR: u8 = 200;
const RR: u8 = 201;
const PSFB: u8 = 206;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walks a compound RTCP packet in the clear. Calls `each` per packet, in order; stops at
/// the first malformed one (what came before it has been reported).
pub fn walk(b: &[u8], mut each: impl FnMut(RtcpItem)) -> Result<(), RtcpError> {
    if b.is_empty() {
        return Err(RtcpError::Empty);
    }
    let mut at = 0;
    while at < b.len() {
        let left = b.len() - at;
        if left < 4 {
            return Err(RtcpError::Truncated { at, left });
        }
        let version = b[at] >> 6;
        if version != 2 {
            return Err(RtcpError::Version { at, version });
        }
        let count = b[at] & 0x1f;
        let packet_type = b[at + 1];
        let len = (u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize + 1) * 4;
        if len > left {
            return Err(RtcpError::Length { at, len, left });
        }
        let p = &b[at..at + len];
        let need = match packet_type {
            SR => 28 + 24 * count as usize,
            RR => 8 + 24 * count as usize,
            PSFB if count == 1 => 12,
            PSFB if count == 4 => 20,
            _ => 4,
        };
        if len < need {
            return Err(RtcpError::Short {
                at,
                packet_type,
                len,
            });
        }
        each(match (packet_type, count) {
            (SR, _) => RtcpItem::SenderReport {
                ssrc: u32_at(p, 4),
                ntp: (u64::from(u32_at(p, 8)) << 32) | u64::from(u32_at(p, 12)),
                rtp_time: u32_at(p, 16),
            },
            (RR, blocks) => RtcpItem::ReceiverReport {
                ssrc: u32_at(p, 4),
                blocks,
            },
            (PSFB, 1) => RtcpItem::Pli {
                media_ssrc: u32_at(p, 8),
            },
            (PSFB, 4) => RtcpItem::Fir,
            _ => RtcpItem::Other { packet_type },
        });
        at += len;
    }
    Ok(())
}

/// Does this compound packet ask for a keyframe (PLI or FIR)? Packets before a malformed
/// one still count.
pub fn wants_keyframe(b: &[u8]) -> bool {
    let mut wants = false;
    let _ = walk(b, |item| {
        wants |= matches!(item, RtcpItem::Pli { .. } | RtcpItem::Fir);
    });
    wants
}

/// The NTP time in a sender report for `ssrc`, if the compound packet has one.
pub fn sender_report_ntp(b: &[u8], ssrc: u32) -> Option<u64> {
    let mut found = None;
    let _ = walk(b, |item| {
        if let RtcpItem::SenderReport { ssrc: s, ntp, .. } = item {
            if s == ssrc {
                found = Some(ntp);
            }
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(ssrc: u32, ntp: u64, rtp: u32) -> Vec<u8> {
        let mut p = vec![0x80, SR, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&ntp.to_be_bytes());
        p.extend_from_slice(&rtp.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    }

    fn pli(media: u32) -> Vec<u8> {
        let mut p = vec![0x81, PSFB, 0, 2, 0, 0, 0, 1];
        p.extend_from_slice(&media.to_be_bytes());
        p
    }

    fn items(b: &[u8]) -> (Vec<RtcpItem>, Result<(), RtcpError>) {
        let mut v = Vec::new();
        let r = walk(b, |i| v.push(i));
        (v, r)
    }

    #[test]
    fn compound_sr_sdes_pli() {
        let mut b = sr(7, 0x1122_3344_5566_7788, 90_000);
        b.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 7]); // SDES, empty chunk
        b.extend_from_slice(&pli(9));
        let (v, r) = items(&b);
        assert_eq!(r, Ok(()));
        assert_eq!(
            v,
            vec![
                RtcpItem::SenderReport {
                    ssrc: 7,
                    ntp: 0x1122_3344_5566_7788,
                    rtp_time: 90_000
                },
                RtcpItem::Other { packet_type: 202 },
                RtcpItem::Pli { media_ssrc: 9 },
            ]
        );
        assert!(wants_keyframe(&b));
        assert_eq!(sender_report_ntp(&b, 7), Some(0x1122_3344_5566_7788));
        assert_eq!(sender_report_ntp(&b, 8), None);
    }

    #[test]
    fn broken_packets_are_errors_and_what_came_before_counts() {
        assert_eq!(items(&[]).1, Err(RtcpError::Empty));
        assert_eq!(
            items(&[0x80, RR]).1,
            Err(RtcpError::Truncated { at: 0, left: 2 })
        );
        assert_eq!(
            items(&[0x40, RR, 0, 1, 0, 0, 0, 0]).1,
            Err(RtcpError::Version { at: 0, version: 1 })
        );
        // Length field past the end, and an RR claiming a block it does not carry.
        assert!(matches!(
            items(&[0x80, RR, 0, 9, 0, 0, 0, 0]).1,
            Err(RtcpError::Length { len: 40, .. })
        ));
        assert!(matches!(
            items(&[0x81, RR, 0, 1, 0, 0, 0, 0]).1,
            Err(RtcpError::Short {
                packet_type: RR,
                ..
            })
        ));
        // A generic NACK with no FCI (what panicked the `rtcp` crate) after a PLI.
        let mut b = pli(3);
        b.extend_from_slice(&[0x81, 205, 0, 1, 0, 0, 0, 1]);
        b.extend_from_slice(&[0x81, 205, 0, 5]);
        let (v, r) = items(&b);
        assert!(r.is_err());
        assert_eq!(v.len(), 2);
        assert!(wants_keyframe(&b));
        for len in 0..b.len() {
            let _ = items(&b[..len]);
        }
    }
}
