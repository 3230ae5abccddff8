//! Offer analysis and answer edits for WHIP/WHEP.

use std::io::Cursor;
use std::net::IpAddr;

use sdp::description::session::SessionDescription;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OfferError {
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    #[error("the SDP offer has no media section")]
    NoMedia,
    #[error("the SDP offer has no a={0} line (incomplete offer?)")]
    Missing(&'static str),
}

/// One payload type of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferCodec {
    pub payload_type: u8,
    /// Encoding name as written (`H264`, `opus`, ...).
    pub name: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
}

impl OfferCodec {
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then_some(v.trim())
        })
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferMedia {
    /// `video`, `audio`, `application`, ...
    pub kind: String,
    pub codecs: Vec<OfferCodec>,
}

/// Parses and checks an offer. The `sdp` crate does the syntax; we pull out the codecs.
pub fn parse_offer(text: &str) -> Result<Vec<OfferMedia>, OfferError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| OfferError::Malformed(e.to_string()))?;
    if desc.media_descriptions.is_empty() {
        return Err(OfferError::NoMedia);
    }
    // ICE credentials and the DTLS fingerprint may sit at session or media level.
    for key in ["ice-ufrag", "ice-pwd", "fingerprint"] {
        let present = desc.attributes.iter().any(|a| a.key == key)
            || desc
                .media_descriptions
                .iter()
                .any(|m| m.attributes.iter().any(|a| a.key == key));
        if !present {
            return Err(OfferError::Missing(key));
        }
    }
    let mut out = Vec::with_capacity(desc.media_descriptions.len());
    for md in &desc.media_descriptions {
        let mut codecs = Vec::new();
        for f in &md.media_name.formats {
            let Ok(pt) = f.parse::<u8>() else { continue };
            let rtpmap = md
                .attributes
                .iter()
                .filter(|a| a.key == "rtpmap")
                .filter_map(|a| a.value.as_deref())
                .find_map(|v| strip_pt(v, pt));
            let Some(rtpmap) = rtpmap else { continue };
            let mut parts = rtpmap.split('/');
            let name = parts.next().unwrap_or_default().trim().to_string();
            let clock_rate = parts
                .next()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(0);
            let channels = parts
                .next()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(1);
            let fmtp = md
                .attributes
                .iter()
                .filter(|a| a.key == "fmtp")
                .filter_map(|a| a.value.as_deref())
                .find_map(|v| strip_pt(v, pt))
                .unwrap_or_default()
                .to_string();
            codecs.push(OfferCodec {
                payload_type: pt,
                name,
                clock_rate,
                channels,
                fmtp,
            });
        }
        out.push(OfferMedia {
            kind: md.media_name.media.clone(),
            codecs,
        });
    }
    Ok(out)
}

/// "96 H264/90000" with pt 96 -> "H264/90000".
fn strip_pt(value: &str, pt: u8) -> Option<&str> {
    let (p, rest) = value.split_once(' ')?;
    (p.trim().parse::<u8>().ok()? == pt).then_some(rest.trim())
}

/// Removes the feedback we do not implement from an offer, because the `webrtc` stack copies
/// the offer's feedback into the answer: bare `nack` (we keep no retransmission buffers),
/// `transport-cc` and `goog-remb` (no bandwidth estimation toward a fixed-rate source).
/// `nack pli` and `ccm fir` stay: viewers use them to ask for keyframes.
pub fn strip_bare_nack(offer: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.split_inclusive('\n') {
        let l = line.trim_end();
        let unsupported = l
            .strip_prefix("a=rtcp-fb:")
            .and_then(|r| r.split_once(' '))
            .is_some_and(|(_, fb)| matches!(fb.trim(), "nack" | "transport-cc" | "goog-remb"));
        if !unsupported {
            out.push_str(line);
        }
    }
    out
}

/// H.264 profile classes as the browsers group them (after libwebrtc's
/// h264_profile_level_id): the first two bytes of profile-level-id differ between encoders
/// for what is the same profile (x264 writes 42c0, Chromium offers 42e0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    ConstrainedHigh,
    High,
    Other(u8),
}

pub fn h264_profile(plid: &str) -> Option<H264Profile> {
    if plid.len() != 6 || !plid.is_ascii() {
        return None;
    }
    let idc = u8::from_str_radix(&plid[0..2], 16).ok()?;
    let iop = u8::from_str_radix(&plid[2..4], 16).ok()?;
    let _level = u8::from_str_radix(&plid[4..6], 16).ok()?;
    Some(match idc {
        0x42 if iop & 0x40 != 0 => H264Profile::ConstrainedBaseline,
        0x4d if iop & 0x80 != 0 => H264Profile::ConstrainedBaseline,
        0x58 if iop & 0xc0 == 0xc0 => H264Profile::ConstrainedBaseline,
        0x42 | 0x58 => H264Profile::Baseline,
        0x4d => H264Profile::Main,
        0x64 if iop & 0x0c == 0x0c => H264Profile::ConstrainedHigh,
        0x64 => H264Profile::High,
        other => H264Profile::Other(other),
    })
}

/// Whether a decoder for `decoder` can play a stream of `stream`. Constrained Baseline is a
/// subset of every other profile; x264's Baseline uses none of FMO/ASO/redundant slices and
/// decodes as Constrained Baseline.
fn decodes(decoder: H264Profile, stream: H264Profile) -> bool {
    use H264Profile::*;
    match stream {
        ConstrainedBaseline | Baseline => !matches!(decoder, Other(_)),
        Main => matches!(decoder, Main | High),
        ConstrainedHigh => matches!(decoder, ConstrainedHigh | High),
        High => decoder == High,
        Other(_) => decoder == stream,
    }
}

/// The H.264 payload type to answer with for a stream with `source_plid` (None: not known
/// yet), and the profile-level-id to put in the answer. Only packetization-mode=1.
pub fn choose_h264<'a>(
    media: &'a OfferMedia,
    source_plid: Option<&str>,
) -> Option<(&'a OfferCodec, String)> {
    let candidates = media
        .codecs
        .iter()
        .filter(|c| c.is("H264") && c.fmtp_param("packetization-mode") == Some("1"));
    let source = source_plid.and_then(h264_profile);
    let mut best: Option<(&OfferCodec, u8)> = None;
    for c in candidates {
        let plid = c.fmtp_param("profile-level-id").unwrap_or("42001f");
        let Some(offered) = h264_profile(plid) else {
            continue;
        };
        let rank = match source {
            Some(s) if offered == s => 0,
            Some(s) if decodes(offered, s) => 1,
            Some(_) => continue,
            // Unknown stream: the most widely decodable profile first.
            None if offered == H264Profile::ConstrainedBaseline => 0,
            None => 1,
        };
        if best.is_none_or(|(_, r)| rank < r) {
            best = Some((c, rank));
        }
    }
    let (codec, rank) = best?;
    // Only a plid that parsed ranked the codecs; an unparsable one was treated as unknown
    // and must not end up in the answer.
    let plid = match (rank, source_plid.filter(|_| source.is_some())) {
        // Same profile: tell the peer the stream's real level.
        (0, Some(p)) => p.to_ascii_lowercase(),
        _ => codec
            .fmtp_param("profile-level-id")
            .unwrap_or("42001f")
            .to_ascii_lowercase(),
    };
    Some((codec, plid))
}

/// Rewrites profile-level-id in the answer's fmtp line of `pt`.
pub fn set_answer_plid(answer: &str, pt: u8, plid: &str) -> String {
    let prefix = format!("a=fmtp:{pt} ");
    let mut out = String::with_capacity(answer.len() + 32);
    for line in answer.split_inclusive('\n') {
        let Some(params) = line.trim_end().strip_prefix(&prefix) else {
            out.push_str(line);
            continue;
        };
        let mut kept: Vec<String> = params
            .split(';')
            .map(str::trim)
            .filter(|kv| !kv.is_empty() && !kv.starts_with("profile-level-id="))
            .map(str::to_string)
            .collect();
        kept.push(format!("profile-level-id={plid}"));
        out.push_str(&prefix);
        out.push_str(&kept.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// Adds host candidates for `webrtcAdditionalHosts` (public IPs behind NAT, DNS names
/// resolved by the caller) after each media section's existing candidates.
pub fn add_host_candidates(answer: &str, hosts: &[IpAddr], port: u16) -> String {
    if hosts.is_empty() {
        return answer.to_string();
    }
    let mut extra = String::new();
    for (i, ip) in hosts.iter().enumerate() {
        // Priority below the real host candidates: type preference 126, local preference low.
        let priority = (126u32 << 24) | ((1000 - i as u32) << 8) | 255;
        extra.push_str(&format!(
            "a=candidate:hubcast{i} 1 udp {priority} {ip} {port} typ host\r\n"
        ));
    }
    let mut out = String::with_capacity(answer.len() + extra.len() * 2);
    let lines: Vec<&str> = answer.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        let is_candidate = line.starts_with("a=candidate:");
        let next_is_candidate = lines
            .get(i + 1)
            .is_some_and(|n| n.starts_with("a=candidate:"));
        if is_candidate && !next_is_candidate {
            out.push_str(&extra);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM_WHEP: &str = include_str!("../../tests/data/chromium-whep-offer.sdp");
    const CREDS: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\na=fingerprint:sha-256 AA\r\n";

    #[test]
    fn parses_chromium_offer() {
        let medias = parse_offer(CHROMIUM_WHEP).expect("valid offer");
        let video = medias.iter().find(|m| m.kind == "video").expect("video");
        assert!(video.codecs.iter().any(|c| c.is("H264")));
        let audio = medias.iter().find(|m| m.kind == "audio").expect("audio");
        assert!(audio.codecs.iter().any(|c| c.is("opus") && c.channels == 2));
    }

    #[test]
    fn chooses_matching_profile_and_real_level() {
        let medias = parse_offer(CHROMIUM_WHEP).expect("valid offer");
        let video = medias.iter().find(|m| m.kind == "video").expect("video");
        // x264 baseline writes 42c0: constrained baseline like Chromium's 42e0.
        let (c, plid) = choose_h264(video, Some("42c028")).expect("compatible");
        assert_eq!(c.fmtp_param("profile-level-id"), Some("42e01f"));
        assert_eq!(plid, "42c028");
        // Main source: only a Main-capable pt, answered with the source's real level.
        let (c, plid) = choose_h264(video, Some("4d0029")).expect("main offered");
        assert!(c
            .fmtp_param("profile-level-id")
            .is_some_and(|p| p.starts_with("4d")));
        assert_eq!(plid, "4d0029");
        // High is not offered by Chromium.
        assert!(choose_h264(video, Some("640028")).is_none());
    }

    #[test]
    fn vp8_only_offer_has_no_h264() {
        let offer = format!("{CREDS}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n");
        let offer = offer.as_str();
        let medias = parse_offer(offer).expect("valid offer");
        assert!(choose_h264(&medias[0], None).is_none());
    }

    #[test]
    fn packetization_mode_0_is_not_usable() {
        let offer = format!("{CREDS}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=0\r\n");
        let offer = offer.as_str();
        let medias = parse_offer(offer).expect("valid offer");
        assert!(choose_h264(&medias[0], None).is_none());
    }

    #[test]
    fn broken_offers_are_refused() {
        assert!(matches!(
            parse_offer("hello"),
            Err(OfferError::Malformed(_))
        ));
        assert!(matches!(parse_offer(""), Err(OfferError::Malformed(_))));
        let before_creds = &CHROMIUM_WHEP[..CHROMIUM_WHEP.find("a=ice-ufrag").unwrap_or(0)];
        assert_eq!(
            parse_offer(before_creds),
            Err(OfferError::Missing("ice-ufrag"))
        );
        assert!(parse_offer(&CHROMIUM_WHEP[..60]).is_err());
        assert_eq!(
            parse_offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"),
            Err(OfferError::NoMedia)
        );
        assert_eq!(h264_profile("zz"), None);
        assert_eq!(h264_profile("42e0ü"), None);
    }

    #[test]
    fn strips_only_bare_nack() {
        let s = "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\n";
        assert_eq!(
            strip_bare_nack(s),
            "a=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n"
        );
    }

    #[test]
    fn rewrites_plid_and_adds_candidates() {
        let a = "m=video 9 X 102\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=candidate:1 1 udp 1 10.0.0.1 8189 typ host\r\na=end\r\n";
        let out = set_answer_plid(a, 102, "42c028");
        assert!(out.contains(
            "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42c028\r\n"
        ));
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let out = add_host_candidates(&out, &[ip], 8189);
        assert!(out.contains(" 203.0.113.7 8189 typ host\r\na=end"));
    }
}
