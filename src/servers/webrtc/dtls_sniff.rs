//! Reads the SRTP profiles out of DTLS hellos: the `use_srtp` extension (RFC 5764) travels in
//! clear in the ClientHello and ServerHello. The transport reassembles a peer's ClientHello
//! to choose the profile in our order before the DTLS stack answers; tests read the
//! ServerHello to see what was agreed.

const CONTENT_HANDSHAKE: u8 = 22;
const RECORD_HEADER: usize = 13;
const HANDSHAKE_HEADER: usize = 12;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const EXT_USE_SRTP: u16 = 14;

/// SRTP protection profile ids (RFC 5764, RFC 7714).
pub const SRTP_AES128_CM_HMAC_SHA1_80: u16 = 0x0001;
pub const SRTP_AES128_CM_HMAC_SHA1_32: u16 = 0x0002;
pub const SRTP_AEAD_AES_128_GCM: u16 = 0x0007;
pub const SRTP_AEAD_AES_256_GCM: u16 = 0x0008;

pub fn profile_name(id: u16) -> &'static str {
    match id {
        SRTP_AES128_CM_HMAC_SHA1_80 => "AES_CM_128_HMAC_SHA1_80",
        SRTP_AES128_CM_HMAC_SHA1_32 => "AES_CM_128_HMAC_SHA1_32",
        SRTP_AEAD_AES_128_GCM => "AEAD_AES_128_GCM",
        SRTP_AEAD_AES_256_GCM => "AEAD_AES_256_GCM",
        _ => "unknown",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// The profiles a client offers, in its order of preference.
    Client(Vec<u16>),
    /// The profile the server chose.
    Server(u16),
}

/// Finds a ClientHello or ServerHello carrying `use_srtp` in one datagram.
/// Fragmented hellos (only the first fragment is parsed) and anything malformed give None.
pub fn find_hello(datagram: &[u8]) -> Option<Hello> {
    let mut rest = datagram;
    while rest.len() >= RECORD_HEADER {
        let len = u16::from_be_bytes([rest[11], rest[12]]) as usize;
        let record = rest.get(RECORD_HEADER..RECORD_HEADER + len)?;
        if rest[0] == CONTENT_HANDSHAKE {
            if let Some(h) = parse_handshake(record) {
                return Some(h);
            }
        }
        rest = &rest[RECORD_HEADER + len..];
    }
    None
}

fn parse_handshake(msg: &[u8]) -> Option<Hello> {
    let msg_type = *msg.first()?;
    if msg_type != CLIENT_HELLO && msg_type != SERVER_HELLO {
        return None;
    }
    let frag_offset = u32::from_be_bytes([0, *msg.get(6)?, *msg.get(7)?, *msg.get(8)?]);
    if frag_offset != 0 {
        return None;
    }
    parse_hello_body(msg_type, msg.get(HANDSHAKE_HEADER..)?)
}

/// The `use_srtp` list of a ClientHello or ServerHello body (the handshake header removed).
fn parse_hello_body(msg_type: u8, body: &[u8]) -> Option<Hello> {
    let mut r = Cursor { buf: body, pos: 0 };
    r.skip(2 + 32)?; // version, random
    let sid = r.u8()? as usize;
    r.skip(sid)?;
    if msg_type == CLIENT_HELLO {
        let cookie = r.u8()? as usize;
        r.skip(cookie)?;
        let suites = r.u16()? as usize;
        r.skip(suites)?;
        let comp = r.u8()? as usize;
        r.skip(comp)?;
    } else {
        r.skip(2 + 1)?; // cipher suite, compression
    }
    let ext_len = r.u16()? as usize;
    let end = (r.pos + ext_len).min(body.len());
    while r.pos + 4 <= end {
        let typ = r.u16()?;
        let len = r.u16()? as usize;
        let data = r.take(len)?;
        if typ == EXT_USE_SRTP {
            let profiles = parse_use_srtp(data)?;
            return Some(if msg_type == CLIENT_HELLO {
                Hello::Client(profiles)
            } else {
                Hello::Server(*profiles.first()?)
            });
        }
    }
    None
}

/// The largest ClientHello we reassemble. Chromium's, with a post-quantum key share, is
/// about 1.4 KB; anything past this is not a WebRTC peer.
const MAX_CLIENT_HELLO: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientHelloError {
    #[error("the DTLS ClientHello is {0} bytes, more than the {MAX_CLIENT_HELLO} we accept")]
    TooLarge(usize),
    #[error("a DTLS ClientHello fragment lies outside its message ({offset}+{len} > {total})")]
    BadFragment {
        offset: usize,
        len: usize,
        total: usize,
    },
    #[error(
        "the DTLS ClientHello cannot be parsed or has no use_srtp extension (not a WebRTC peer?)"
    )]
    NoUseSrtp,
}

/// Puts a ClientHello back together from its fragments (RFC 6347 4.2.3), which may arrive
/// over several datagrams, to read its `use_srtp` list before any DTLS stack answers it.
#[derive(Debug, Default)]
pub struct ClientHelloAssembler {
    message_seq: Option<u16>,
    body: Vec<u8>,
    /// Which bytes of `body` have arrived.
    have: Vec<bool>,
    /// How many have not: kept as fragments arrive, so completion is not a rescan.
    missing: usize,
}

impl ClientHelloAssembler {
    /// Feeds one datagram; returns the client's SRTP profiles (in its order) once the whole
    /// ClientHello is in. Records other than epoch-0 handshake records are skipped.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Option<Vec<u16>>, ClientHelloError> {
        let mut rest = datagram;
        while rest.len() >= RECORD_HEADER {
            let len = u16::from_be_bytes([rest[11], rest[12]]) as usize;
            let Some(record) = rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
                break;
            };
            let epoch = u16::from_be_bytes([rest[3], rest[4]]);
            if rest[0] == CONTENT_HANDSHAKE && epoch == 0 {
                if let Some(done) = self.fragment(record)? {
                    return Ok(Some(done));
                }
            }
            rest = &rest[RECORD_HEADER + len..];
        }
        Ok(None)
    }

    fn fragment(&mut self, record: &[u8]) -> Result<Option<Vec<u16>>, ClientHelloError> {
        if record.len() < HANDSHAKE_HEADER || record[0] != CLIENT_HELLO {
            return Ok(None);
        }
        let be24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        let total = be24(&record[1..4]);
        let seq = u16::from_be_bytes([record[4], record[5]]);
        let offset = be24(&record[6..9]);
        let flen = be24(&record[9..12]);
        let data = &record[HANDSHAKE_HEADER..];
        if total > MAX_CLIENT_HELLO {
            return Err(ClientHelloError::TooLarge(total));
        }
        if offset + flen > total || flen > data.len() {
            return Err(ClientHelloError::BadFragment {
                offset,
                len: flen,
                total,
            });
        }
        // A retransmitted or newer ClientHello (after HelloVerifyRequest) starts over.
        if self.message_seq != Some(seq) || self.body.len() != total {
            self.message_seq = Some(seq);
            self.body = vec![0; total];
            self.have = vec![false; total];
            self.missing = total;
        }
        self.body[offset..offset + flen].copy_from_slice(&data[..flen]);
        for have in &mut self.have[offset..offset + flen] {
            if !*have {
                *have = true;
                self.missing -= 1;
            }
        }
        if self.missing > 0 {
            return Ok(None);
        }
        match parse_hello_body(CLIENT_HELLO, &self.body) {
            Some(Hello::Client(profiles)) => Ok(Some(profiles)),
            _ => Err(ClientHelloError::NoUseSrtp),
        }
    }
}

fn parse_use_srtp(data: &[u8]) -> Option<Vec<u16>> {
    let mut r = Cursor { buf: data, pos: 0 };
    let n = r.u16()? as usize;
    let list = r.take(n)?;
    Some(
        list.chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect(),
    )
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(handshake: &[u8]) -> Vec<u8> {
        let mut v = vec![CONTENT_HANDSHAKE, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        v.extend_from_slice(handshake);
        v
    }

    fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() as u32;
        let mut v = vec![msg_type];
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.extend_from_slice(&[0, 0, 0, 0, 0]);
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }

    fn use_srtp(profiles: &[u16]) -> Vec<u8> {
        let mut ext = Vec::new();
        ext.extend_from_slice(&EXT_USE_SRTP.to_be_bytes());
        let data_len = 2 + profiles.len() * 2 + 1;
        ext.extend_from_slice(&(data_len as u16).to_be_bytes());
        ext.extend_from_slice(&((profiles.len() * 2) as u16).to_be_bytes());
        for p in profiles {
            ext.extend_from_slice(&p.to_be_bytes());
        }
        ext.push(0);
        ext
    }

    fn server_hello(profile: u16) -> Vec<u8> {
        let mut body = vec![0xfe, 0xfd];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0xc0, 0x2b, 0]);
        let ext = use_srtp(&[profile]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        record(&handshake(SERVER_HELLO, &body))
    }

    fn client_hello(profiles: &[u16]) -> Vec<u8> {
        let mut body = vec![0xfe, 0xfd];
        body.extend_from_slice(&[9; 32]);
        body.push(0); // session id
        body.push(0); // cookie
        body.extend_from_slice(&[0, 2, 0xc0, 0x2b]);
        body.extend_from_slice(&[1, 0]);
        let mut ext = vec![0xff, 0x01, 0, 1, 0]; // renegotiation_info first
        ext.extend(use_srtp(profiles));
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        record(&handshake(CLIENT_HELLO, &body))
    }

    /// Splits a one-record hello into `parts` fragments, one record per datagram.
    fn fragmented(hello: &[u8], parts: usize) -> Vec<Vec<u8>> {
        let hs = &hello[RECORD_HEADER..];
        let body = &hs[HANDSHAKE_HEADER..];
        let chunk = body.len().div_ceil(parts);
        body.chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let mut h = hs[..HANDSHAKE_HEADER].to_vec();
                h[6..9].copy_from_slice(&((i * chunk) as u32).to_be_bytes()[1..]);
                h[9..12].copy_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
                h.extend_from_slice(c);
                record(&h)
            })
            .collect()
    }

    #[test]
    fn reassembles_a_fragmented_client_hello_in_any_order() {
        let offer = [SRTP_AES128_CM_HMAC_SHA1_80, SRTP_AEAD_AES_128_GCM];
        let mut parts = fragmented(&client_hello(&offer), 3);
        assert_eq!(
            find_hello(&parts[1]),
            None,
            "a middle fragment alone says nothing"
        );
        parts.swap(0, 2);
        let mut a = ClientHelloAssembler::default();
        assert_eq!(a.push(&parts[0]), Ok(None));
        assert_eq!(a.push(&parts[1]), Ok(None));
        assert_eq!(a.push(&parts[2]), Ok(Some(offer.to_vec())));
        // Unfragmented in one go.
        let mut a = ClientHelloAssembler::default();
        assert_eq!(a.push(&client_hello(&offer)), Ok(Some(offer.to_vec())));
    }

    #[test]
    fn broken_client_hellos_are_refused() {
        let hello = client_hello(&[SRTP_AEAD_AES_128_GCM]);
        // A fragment that claims to reach past the message.
        let mut bad = hello.clone();
        bad[RECORD_HEADER + 9..RECORD_HEADER + 12].copy_from_slice(&[0, 0x40, 0]);
        assert!(matches!(
            ClientHelloAssembler::default().push(&bad),
            Err(ClientHelloError::BadFragment { .. })
        ));
        // A huge announced length.
        let mut huge = hello.clone();
        huge[RECORD_HEADER + 1..RECORD_HEADER + 4].copy_from_slice(&[0x10, 0, 0]);
        assert!(matches!(
            ClientHelloAssembler::default().push(&huge),
            Err(ClientHelloError::TooLarge(_))
        ));
        // Complete but without use_srtp: cut the extensions off and fix up the lengths.
        let mut body = hello[RECORD_HEADER + HANDSHAKE_HEADER..].to_vec();
        body.truncate(2 + 32 + 1 + 1 + 4 + 2);
        let plain = record(&handshake(CLIENT_HELLO, &body));
        assert_eq!(
            ClientHelloAssembler::default().push(&plain),
            Err(ClientHelloError::NoUseSrtp)
        );
        // Every prefix of a datagram is either incomplete or refused, never a panic.
        for n in 0..hello.len() {
            let _ = ClientHelloAssembler::default().push(&hello[..n]);
        }
    }

    #[test]
    fn reads_server_choice_and_client_offer() {
        assert_eq!(
            find_hello(&server_hello(SRTP_AEAD_AES_128_GCM)),
            Some(Hello::Server(SRTP_AEAD_AES_128_GCM))
        );
        let offer = [
            SRTP_AES128_CM_HMAC_SHA1_80,
            SRTP_AEAD_AES_256_GCM,
            SRTP_AEAD_AES_128_GCM,
        ];
        assert_eq!(
            find_hello(&client_hello(&offer)),
            Some(Hello::Client(offer.to_vec()))
        );
    }

    #[test]
    fn truncated_and_garbage_give_none() {
        let full = server_hello(SRTP_AEAD_AES_128_GCM);
        for n in 0..full.len() {
            assert_eq!(find_hello(&full[..n]), None, "prefix of {n} bytes");
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut buf = vec![CONTENT_HANDSHAKE; 64];
            for b in buf.iter_mut().skip(1) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = find_hello(&buf);
        }
    }
}
