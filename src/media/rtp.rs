//! Just enough RTP (RFC 3550) to take packets apart without copying the payload.

use bytes::Bytes;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtpError {
    #[error("RTP packet too short ({0} bytes)")]
    TooShort(usize),
    #[error("not RTP version 2 (version {0})")]
    BadVersion(u8),
    #[error("RTP header runs past the packet end")]
    HeaderPastEnd,
    #[error("RTP padding longer than the payload")]
    BadPadding,
    #[error("RTP header extension element at byte {0} runs past the extension block")]
    ExtensionPastEnd(usize),
}

/// Checks that the RFC 8285 extension elements of an RTP header (one- and two-byte forms)
/// each stay inside the extension block and the packet. The `rtp` crate (also used inside
/// `webrtc-srtp` before a packet's tag is checked) panics on an element that runs past the
/// packet, so packets from peers go through this first.
pub fn check_extensions(b: &[u8]) -> Result<(), RtpError> {
    if b.len() < 12 {
        return Err(RtpError::TooShort(b.len()));
    }
    if b[0] & 0x10 == 0 {
        return Ok(());
    }
    let start = 12 + 4 * (b[0] & 0x0f) as usize;
    let ext = b.get(start..start + 4).ok_or(RtpError::HeaderPastEnd)?;
    let profile = u16::from_be_bytes([ext[0], ext[1]]);
    let mut at = start + 4;
    let end = at + 4 * u16::from_be_bytes([ext[2], ext[3]]) as usize;
    if end > b.len() {
        return Err(RtpError::HeaderPastEnd);
    }
    let two_byte = match profile {
        0xBEDE => false,
        0x1000 => true,
        _ => return Ok(()),
    };
    while at < end {
        let first = b[at];
        let element = at;
        at += 1;
        if first == 0 {
            continue;
        }
        let len = if two_byte {
            let len = *b
                .get(at)
                .filter(|_| at < end)
                .ok_or(RtpError::ExtensionPastEnd(element))?;
            at += 1;
            len as usize
        } else {
            if first >> 4 == 15 {
                break;
            }
            (first & 0x0f) as usize + 1
        };
        at += len;
        if at > end {
            return Err(RtpError::ExtensionPastEnd(element));
        }
    }
    Ok(())
}

/// The fields of an RTP header that the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Bytes,
}

/// Parses one RTP packet; the payload shares `data`'s buffer.
pub fn parse(data: &Bytes) -> Result<RtpPacket, RtpError> {
    let b = data.as_ref();
    if b.len() < 12 {
        return Err(RtpError::TooShort(b.len()));
    }
    let version = b[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = b[0] & 0x20 != 0;
    let extension = b[0] & 0x10 != 0;
    let csrc_count = (b[0] & 0x0f) as usize;
    let mut start = 12 + 4 * csrc_count;
    if extension {
        let ext = b.get(start..start + 4).ok_or(RtpError::HeaderPastEnd)?;
        let words = u16::from_be_bytes([ext[2], ext[3]]) as usize;
        start += 4 + 4 * words;
    }
    if start > b.len() {
        return Err(RtpError::HeaderPastEnd);
    }
    let mut end = b.len();
    if padding {
        let pad = b[end - 1] as usize;
        if pad == 0 || start + pad > end {
            return Err(RtpError::BadPadding);
        }
        end -= pad;
    }
    Ok(RtpPacket {
        marker: b[1] & 0x80 != 0,
        payload_type: b[1] & 0x7f,
        sequence: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: data.slice(start..end),
    })
}

/// Is this datagram RTCP rather than RTP (RFC 5761 4: payload types 64..=95 with marker)?
pub fn is_rtcp(b: &[u8]) -> bool {
    b.len() >= 2 && (192..=223).contains(&b[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(first: u8) -> Vec<u8> {
        vec![first, 0x80 | 96, 0, 7, 0, 0, 0, 9, 1, 2, 3, 4]
    }

    #[test]
    fn parses_header_and_shares_payload() {
        let mut v = header(0x80);
        v.extend_from_slice(&[0x65, 1, 2]);
        let data = Bytes::from(v);
        let p = parse(&data).expect("valid");
        assert!(p.marker);
        assert_eq!((p.payload_type, p.sequence, p.timestamp), (96, 7, 9));
        assert_eq!(p.ssrc, 0x01020304);
        assert_eq!(&p.payload[..], &[0x65, 1, 2]);
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut v = header(0x80 | 0x20 | 0x10 | 1);
        v.extend_from_slice(&[0, 0, 0, 1]); // one CSRC
        v.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // extension of one word
        v.extend_from_slice(&[0x41, 5, 0, 2]); // payload + 2 bytes of padding
        let p = parse(&Bytes::from(v)).expect("valid");
        assert_eq!(&p.payload[..], &[0x41, 5]);
    }

    #[test]
    fn broken_packets() {
        assert_eq!(
            parse(&Bytes::from_static(&[0x80; 5])),
            Err(RtpError::TooShort(5))
        );
        assert_eq!(
            parse(&Bytes::from(header(0x40))),
            Err(RtpError::BadVersion(1))
        );
        assert_eq!(
            parse(&Bytes::from(header(0x8f))),
            Err(RtpError::HeaderPastEnd)
        );
        assert_eq!(
            parse(&Bytes::from(header(0x90))),
            Err(RtpError::HeaderPastEnd)
        );
        let mut v = header(0xa0);
        v.push(200);
        assert_eq!(parse(&Bytes::from(v)), Err(RtpError::BadPadding));
        let mut x: u32 = 99;
        for _ in 0..5000 {
            let mut buf = vec![0u8; (x % 40) as usize];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = parse(&Bytes::from(buf));
        }
    }

    #[test]
    fn extension_elements_must_fit_their_block() {
        // One-byte form (0xBEDE), one word: id 1 len 2, then padding.
        let mut ok = header(0x90);
        ok.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x11, 0xaa, 0xbb, 0x00, 0x65]);
        assert_eq!(check_extensions(&ok), Ok(()));
        // id 1 claiming 16 bytes in a one-word block.
        let mut long = header(0x90);
        long.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x1f, 0xaa, 0xbb, 0xcc]);
        assert_eq!(check_extensions(&long), Err(RtpError::ExtensionPastEnd(16)));
        // Two-byte form: id 1 claiming 200 bytes; and a length byte past the block.
        let mut two = header(0x90);
        two.extend_from_slice(&[0x10, 0x00, 0, 1, 0x01, 200, 0xaa, 0xbb]);
        assert_eq!(check_extensions(&two), Err(RtpError::ExtensionPastEnd(16)));
        let mut cut = header(0x90);
        cut.extend_from_slice(&[0x10, 0x00, 0, 1, 0, 0, 0, 0x01]);
        assert_eq!(check_extensions(&cut), Err(RtpError::ExtensionPastEnd(19)));
        // A block longer than the packet; no extension at all.
        let mut past = header(0x90);
        past.extend_from_slice(&[0xBE, 0xDE, 0, 9, 0x10, 0xaa]);
        assert_eq!(check_extensions(&past), Err(RtpError::HeaderPastEnd));
        assert_eq!(check_extensions(&header(0x80)), Ok(()));
    }
}
