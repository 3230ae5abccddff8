//! The SDP answer of a WHIP/WHEP session on hubcast's transport: ICE-lite, one BUNDLE
//! transport, every candidate on the shared UDP port, and per m-section exactly the codec
//! we chose (with keyframe feedback; no NACK, no transport-cc, no header extensions).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::sdp::{Direction, OfferCodec, OfferMedia};

/// What we do with one offered m-section.
pub struct Section<'a> {
    pub offer: &'a OfferMedia,
    /// `None`: rejected (port 0).
    pub accepted: Option<Accepted>,
}

/// Every offered m-section, none accepted yet.
pub fn sections(medias: &[OfferMedia]) -> Vec<Section<'_>> {
    medias
        .iter()
        .map(|m| Section {
            offer: m,
            accepted: None,
        })
        .collect()
}

pub struct Accepted {
    pub codec: OfferCodec,
    /// Our direction: `SendOnly` for WHEP, `RecvOnly` for WHIP.
    pub direction: Direction,
    /// The SSRC we send with, if we send.
    pub ssrc: Option<u32>,
}

pub struct Transport<'a> {
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// `sha-256 AB:CD:...`
    pub fingerprint: &'a str,
    /// `passive` (we are the DTLS server) or `active`.
    pub setup: &'a str,
    pub candidates: &'a [SocketAddr],
}

/// Keyframe feedback we honour (as receiver we send PLI; as sender we act on PLI and FIR).
const FEEDBACK: [&str; 2] = ["nack pli", "ccm fir"];

pub fn build(t: &Transport<'_>, sections: &[Section<'_>]) -> String {
    let mut s = String::with_capacity(1024 + 512 * sections.len());
    let session_id: u64 = rand::random::<u64>() >> 1;
    let first = t.candidates.first().copied();
    let (net, addr) = match first.map(|a| a.ip()) {
        Some(IpAddr::V6(ip)) => ("IP6", ip.to_string()),
        Some(IpAddr::V4(ip)) => ("IP4", ip.to_string()),
        None => ("IP4", "0.0.0.0".to_string()),
    };
    let port = first.map_or(9, |a| a.port());
    let _ = write!(
        s,
        "v=0\r\no=- {session_id} 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n"
    );
    let bundle: Vec<&str> = sections
        .iter()
        .filter(|x| x.accepted.is_some())
        .filter_map(|x| x.offer.mid.as_deref())
        .collect();
    if !bundle.is_empty() {
        let _ = write!(s, "a=group:BUNDLE {}\r\n", bundle.join(" "));
    }
    for sec in sections {
        let m = sec.offer;
        let Some(acc) = &sec.accepted else {
            // Rejected: port 0. RTP sections still name one offered codec, because some
            // stacks (the `webrtc` crate) refuse an answer whose m-line lists no known
            // payload type.
            let first = m.codecs.first();
            let formats = first.map_or_else(|| m.formats.join(" "), |c| c.payload_type.to_string());
            let _ = write!(
                s,
                "m={} 0 {} {formats}\r\nc=IN IP4 0.0.0.0\r\n",
                m.kind, m.proto
            );
            // Strict parsers (aiortc) read ICE and DTLS parameters from every m-section,
            // rejected ones too, as libwebrtc and pion write them.
            write_transport(&mut s, t);
            if let Some(mid) = &m.mid {
                let _ = write!(s, "a=mid:{mid}\r\n");
            }
            s.push_str("a=inactive\r\n");
            if m.proto.contains("RTP") {
                // aiortc refuses an answer with any RTP section lacking rtcp-mux.
                s.push_str("a=rtcp-mux\r\n");
            }
            if let Some(c) = first {
                write_codec(&mut s, c);
            }
            continue;
        };
        let c = &acc.codec;
        let pt = c.payload_type;
        let _ = write!(
            s,
            "m={} {port} {} {pt}\r\nc=IN {net} {addr}\r\n",
            m.kind, m.proto
        );
        write_transport(&mut s, t);
        if let Some(mid) = &m.mid {
            let _ = write!(s, "a=mid:{mid}\r\n");
        }
        s.push_str(match acc.direction {
            Direction::SendOnly => "a=sendonly\r\n",
            Direction::RecvOnly => "a=recvonly\r\n",
            Direction::SendRecv => "a=sendrecv\r\n",
            Direction::Inactive => "a=inactive\r\n",
        });
        s.push_str("a=rtcp-mux\r\n");
        if m.rtcp_rsize {
            s.push_str("a=rtcp-rsize\r\n");
        }
        write_codec(&mut s, c);
        if m.kind == "video" {
            for fb in FEEDBACK {
                if m.feedback.iter().any(|(p, f)| *p == pt && f == fb) {
                    let _ = write!(s, "a=rtcp-fb:{pt} {fb}\r\n");
                }
            }
        }
        if let Some(ssrc) = acc.ssrc {
            let _ = write!(
                s,
                "a=msid:hubcast {kind}\r\na=ssrc:{ssrc} cname:hubcast\r\na=ssrc:{ssrc} msid:hubcast {kind}\r\n",
                kind = m.kind
            );
        }
        for (i, cand) in t.candidates.iter().enumerate() {
            // Host type preference 126; earlier addresses preferred.
            let priority = (126u32 << 24) | ((65535 - i.min(65535) as u32) << 8) | 255;
            let _ = write!(
                s,
                "a=candidate:{i} 1 udp {priority} {} {} typ host\r\n",
                cand.ip(),
                cand.port()
            );
        }
        s.push_str("a=end-of-candidates\r\n");
    }
    s
}

fn write_transport(s: &mut String, t: &Transport<'_>) {
    let _ = write!(
        s,
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:{}\r\n",
        t.ice_ufrag, t.ice_pwd, t.fingerprint, t.setup
    );
}

fn write_codec(s: &mut String, c: &OfferCodec) {
    let pt = c.payload_type;
    if c.channels > 1 {
        let _ = write!(
            s,
            "a=rtpmap:{pt} {}/{}/{}\r\n",
            c.name, c.clock_rate, c.channels
        );
    } else {
        let _ = write!(s, "a=rtpmap:{pt} {}/{}\r\n", c.name, c.clock_rate);
    }
    if !c.fmtp.is_empty() {
        let _ = write!(s, "a=fmtp:{pt} {}\r\n", c.fmtp);
    }
}

/// Sets `profile-level-id` in an fmtp line (the answer states the stream's real profile
/// and level).
pub fn with_plid(fmtp: &str, plid: &str) -> String {
    let mut kept: Vec<&str> = fmtp
        .split(';')
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && !kv.starts_with("profile-level-id="))
        .collect();
    let p = format!("profile-level-id={plid}");
    kept.push(&p);
    kept.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::webrtc::sdp::parse_offer;

    const CHROMIUM_WHEP: &str = include_str!("../../../tests/data/chromium-whep-offer.sdp");

    #[test]
    fn answer_parses_and_keeps_the_offer_order() {
        let offer = parse_offer(CHROMIUM_WHEP).expect("offer");
        let sections: Vec<Section> = offer
            .medias
            .iter()
            .map(|m| Section {
                offer: m,
                accepted: (m.kind == "video").then(|| Accepted {
                    codec: m.codecs.iter().find(|c| c.is("H264")).unwrap().clone(),
                    direction: Direction::SendOnly,
                    ssrc: Some(1234),
                }),
            })
            .collect();
        let cands: Vec<SocketAddr> = vec!["127.0.0.1:8189".parse().unwrap()];
        let text = build(
            &Transport {
                ice_ufrag: "uf",
                ice_pwd: "pw",
                fingerprint: "sha-256 AA:BB",
                setup: "passive",
                candidates: &cands,
            },
            &sections,
        );
        let back = parse_offer(&text).expect("our answer parses");
        assert_eq!(back.medias.len(), offer.medias.len());
        for (a, o) in back.medias.iter().zip(&offer.medias) {
            assert_eq!(a.kind, o.kind);
            assert_eq!(a.mid, o.mid);
            assert_eq!(a.disabled, o.kind != "video");
        }
        assert_eq!(back.transport.setup, "passive");
        assert!(text.contains("a=ice-lite\r\n"));
        assert!(text.contains("a=group:BUNDLE 0\r\n"));
        assert!(text.contains(" 127.0.0.1 8189 typ host\r\n"));
        assert!(text.contains("a=ssrc:1234 cname:hubcast\r\n"));
        assert!(!text.contains("nack\r\n"), "no bare NACK");
        assert!(!text.contains("transport-cc"));
        // Every m-section, the rejected audio one too, carries ICE and DTLS parameters.
        let sections: Vec<&str> = text.split("\r\nm=").skip(1).collect();
        assert_eq!(sections.len(), offer.medias.len());
        for sec in sections {
            for attr in [
                "a=ice-ufrag:uf",
                "a=ice-pwd:pw",
                "a=fingerprint:sha-256 AA:BB",
                "a=setup:passive",
                "a=rtcp-mux",
            ] {
                assert!(sec.contains(attr), "{attr} missing in m={sec}");
            }
        }
    }

    #[test]
    fn plid_is_replaced() {
        assert_eq!(
            with_plid(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                "42c028"
            ),
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42c028"
        );
        assert_eq!(with_plid("", "42c028"), "profile-level-id=42c028");
    }
}
