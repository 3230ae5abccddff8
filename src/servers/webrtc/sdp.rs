//! Offer analysis and answer edits for WHIP/WHEP.

use std::io::Cursor;

use sdp::description::session::SessionDescription;

use crate::codec::{Codec, Track};

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

/// Which way media flows in an m-section (RFC 3264 6.1), as the offerer wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferMedia {
    /// `video`, `audio`, `application`, ...
    pub kind: String,
    pub codecs: Vec<OfferCodec>,
    pub mid: Option<String>,
    /// `UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`, ...
    pub proto: String,
    /// The m-line's format list as written (an answer that rejects the section repeats it).
    pub formats: Vec<String>,
    /// Port 0 without `a=bundle-only`: the offerer itself disabled the section. (Port 0
    /// with `bundle-only` is RFC 8843's "accept me only inside the BUNDLE group", as
    /// GStreamer's webrtcbin writes every section after the first under max-bundle.)
    pub disabled: bool,
    pub direction: Direction,
    /// `a=rtcp-rsize`: reduced-size RTCP is allowed.
    pub rtcp_rsize: bool,
    /// `a=rtcp-fb` values per payload type, e.g. (96, "nack pli").
    pub feedback: Vec<(u8, String)>,
}

/// ICE and DTLS parameters of an offer (session level, or the first m-section's: with
/// BUNDLE they are the same for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferTransport {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// Hash name (`sha-256`) and colon-separated hex.
    pub fingerprint: (String, String),
    /// `actpass`, `active` or `passive` (`actpass` when absent, RFC 5763 5).
    pub setup: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub medias: Vec<OfferMedia>,
    pub transport: OfferTransport,
}

/// Parses and checks an offer. The `sdp` crate does the syntax; we pull out the codecs and
/// the transport parameters.
pub fn parse_offer(text: &str) -> Result<Offer, OfferError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| OfferError::Malformed(e.to_string()))?;
    if desc.media_descriptions.is_empty() {
        return Err(OfferError::NoMedia);
    }
    // Session level first, then the m-sections in order.
    let attr = |key: &str| -> Option<String> {
        desc.attributes
            .iter()
            .chain(
                desc.media_descriptions
                    .iter()
                    .flat_map(|m| m.attributes.iter()),
            )
            .find(|a| a.key == key)
            .map(|a| a.value.clone().unwrap_or_default().trim().to_string())
    };
    let ice_ufrag = attr("ice-ufrag").ok_or(OfferError::Missing("ice-ufrag"))?;
    let ice_pwd = attr("ice-pwd").ok_or(OfferError::Missing("ice-pwd"))?;
    // RFC 8839 5.4: at most 256 characters each. Longer ones would not fit our consent
    // requests' USERNAME either.
    for (name, value) in [("ice-ufrag", &ice_ufrag), ("ice-pwd", &ice_pwd)] {
        if value.len() > 256 {
            return Err(OfferError::Malformed(format!(
                "a={name} is {} characters long; at most 256 are allowed",
                value.len()
            )));
        }
    }
    let fingerprint = attr("fingerprint").ok_or(OfferError::Missing("fingerprint"))?;
    let fingerprint = match fingerprint.split_once(' ') {
        Some((alg, value)) if !value.trim().is_empty() => {
            (alg.trim().to_string(), value.trim().to_string())
        }
        _ => {
            return Err(OfferError::Malformed(format!(
                "a=fingerprint:{fingerprint} is not \"<hash> <hex>\""
            )))
        }
    };
    let setup = attr("setup").unwrap_or_else(|| "actpass".into());
    if !matches!(setup.as_str(), "actpass" | "active" | "passive") {
        return Err(OfferError::Malformed(format!(
            "a=setup:{setup} (expected actpass, active or passive)"
        )));
    }
    let mut out = Vec::with_capacity(desc.media_descriptions.len());
    for md in &desc.media_descriptions {
        let mut codecs = Vec::new();
        // Each payload type once: a format list repeating one type thousands of times
        // (with a long fmtp) would cost a scan and a copy per repetition.
        let mut seen = [false; 256];
        for f in &md.media_name.formats {
            let Ok(pt) = f.parse::<u8>() else { continue };
            if std::mem::replace(&mut seen[pt as usize], true) {
                continue;
            }
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
        let has = |key: &str| md.attributes.iter().any(|a| a.key == key);
        let direction = if has("sendonly") {
            Direction::SendOnly
        } else if has("recvonly") {
            Direction::RecvOnly
        } else if has("inactive") {
            Direction::Inactive
        } else {
            Direction::SendRecv
        };
        let feedback = md
            .attributes
            .iter()
            .filter(|a| a.key == "rtcp-fb")
            .filter_map(|a| a.value.as_deref())
            .filter_map(|v| {
                let (pt, fb) = v.split_once(' ')?;
                Some((pt.trim().parse().ok()?, fb.trim().to_string()))
            })
            .collect();
        out.push(OfferMedia {
            kind: md.media_name.media.clone(),
            codecs,
            mid: md
                .attributes
                .iter()
                .find(|a| a.key == "mid")
                .and_then(|a| a.value.clone()),
            proto: md.media_name.protos.join("/"),
            formats: md.media_name.formats.clone(),
            disabled: md.media_name.port.value == 0 && !has("bundle-only"),
            direction,
            rtcp_rsize: has("rtcp-rsize"),
            feedback,
        });
    }
    Ok(Offer {
        medias: out,
        transport: OfferTransport {
            ice_ufrag,
            ice_pwd,
            fingerprint,
            setup,
        },
    })
}

/// "96 H264/90000" with pt 96 -> "H264/90000".
fn strip_pt(value: &str, pt: u8) -> Option<&str> {
    let (p, rest) = value.split_once(' ')?;
    (p.trim().parse::<u8>().ok()? == pt).then_some(rest.trim())
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

/// The offer's codec for an audio track: same encoding name and RTP clock (Opus at 48 kHz,
/// G.711 and G.722 at 8 kHz), if any.
pub fn choose_audio<'a>(media: &'a OfferMedia, track: &Track) -> Option<&'a OfferCodec> {
    media
        .codecs
        .iter()
        .find(|c| c.is(track.encoding()) && c.clock_rate == track.clock_rate)
}

/// The first audio codec of the offer a WHIP publisher may send: Opus, else G.722, else
/// G.711.
pub fn choose_publisher_audio(media: &OfferMedia) -> Option<(&OfferCodec, Track)> {
    use crate::codec::g711::Law;
    [
        Track::opus(2),
        Track::g722(),
        Track::g711(Law::Mu),
        Track::g711(Law::A),
    ]
    .into_iter()
    .find_map(|t| choose_audio(media, &t).map(|c| (c, t)))
}

/// The offer's codec for a VP8, VP9 or AV1 track. VP9 and AV1 streams from browsers are
/// profile 0 (what every decoder takes), so an offer's profile 0 entry is the one.
pub fn choose_passthrough_video<'a>(
    media: &'a OfferMedia,
    track: &Track,
) -> Option<&'a OfferCodec> {
    let same = |c: &&OfferCodec| c.is(track.encoding()) && c.clock_rate == track.clock_rate;
    let profile0 = |c: &&OfferCodec| {
        matches!(
            c.fmtp_param("profile-id").or(c.fmtp_param("profile")),
            None | Some("0")
        )
    };
    let mut matching = media.codecs.iter().filter(same);
    matching.clone().find(profile0).or_else(|| matching.next())
}

/// The video codec a WHIP publisher may send: H.264 (packetization-mode=1) when offered, as
/// every kind of reader takes it; else the first of VP8, VP9 or AV1 in the offer's order.
pub fn choose_publisher_video(media: &OfferMedia) -> Option<(&OfferCodec, Track)> {
    if let Some((c, _)) = choose_h264(media, None) {
        return Some((c, Track::h264(Default::default())));
    }
    media.codecs.iter().find_map(|c| {
        if c.is(crate::codec::h265::ENCODING) {
            return Some((choose_h265(media, None)?, Track::h265(Default::default())));
        }
        let codec = [Codec::Vp8, Codec::Vp9, Codec::Av1]
            .into_iter()
            .find(|k| c.is(Track::video(k.clone()).encoding()) && c.clock_rate == 90_000)?;
        let track = Track::video(codec);
        // VP9 and AV1: profile 0 only, the one every viewer decodes.
        let c = choose_passthrough_video(media, &track)?;
        Some((c, track))
    })
}

/// The offer's H.265 entry for a stream of profile `profile_id` (None: not known yet, or a
/// publisher's offer): the one with that profile, else Main (1), the one every H.265
/// decoder takes. RFC 7798 7.1: an absent profile-id is Main.
pub fn choose_h265(media: &OfferMedia, profile_id: Option<u8>) -> Option<&OfferCodec> {
    let profile = |c: &&OfferCodec| {
        c.fmtp_param("profile-id")
            .map_or(Some(1), |p| p.parse::<u8>().ok())
    };
    let mut h265 = media
        .codecs
        .iter()
        .filter(|c| c.is(crate::codec::h265::ENCODING) && c.clock_rate == 90_000);
    let want = profile_id.unwrap_or(1);
    h265.clone()
        .find(|c| profile(c) == Some(want))
        .or_else(|| match profile_id {
            // A stream of another profile (Main 10, RExt) needs a decoder of that profile.
            Some(_) => None,
            None => h265.next(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM_WHEP: &str = include_str!("../../../tests/data/chromium-whep-offer.sdp");
    const CREDS: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\na=fingerprint:sha-256 AA\r\n";

    #[test]
    fn parses_chromium_offer() {
        let offer = parse_offer(CHROMIUM_WHEP).expect("valid offer");
        let medias = &offer.medias;
        let video = medias.iter().find(|m| m.kind == "video").expect("video");
        assert!(video.codecs.iter().any(|c| c.is("H264")));
        assert_eq!(video.direction, Direction::RecvOnly);
        assert_eq!(video.mid.as_deref(), Some("0"));
        assert!(video.rtcp_rsize);
        let audio = medias.iter().find(|m| m.kind == "audio").expect("audio");
        assert!(audio.codecs.iter().any(|c| c.is("opus") && c.channels == 2));
        assert_eq!(offer.transport.setup, "actpass");
        assert_eq!(offer.transport.fingerprint.0, "sha-256");
    }

    #[test]
    fn a_repeated_payload_type_is_taken_once_and_long_ice_credentials_refused() {
        let formats = vec!["96"; 15_000].join(" ");
        let fmtp = format!("a=fmtp:96 packetization-mode=1;x={}", "a".repeat(30_000));
        let offer = format!(
            "{CREDS}m=video 9 UDP/TLS/RTP/SAVPF {formats}\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\n{fmtp}\r\n"
        );
        let parsed = parse_offer(&offer).expect("valid offer");
        assert_eq!(parsed.medias[0].codecs.len(), 1, "one codec, one fmtp copy");
        let long = CREDS.replace("ice-ufrag:x", &format!("ice-ufrag:{}", "u".repeat(300)));
        let offer = format!("{long}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n");
        let Err(err) = parse_offer(&offer) else {
            panic!("a 300-character ufrag was accepted");
        };
        assert!(err.to_string().contains("ice-ufrag"), "{err}");
    }

    #[test]
    fn bundle_only_port_zero_is_not_disabled() {
        // GStreamer webrtcbin under max-bundle: the second section has port 0 + bundle-only.
        let offer = format!(
            "{CREDS}a=group:BUNDLE video0 audio1\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=setup:actpass\r\na=mid:video0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\n\
             m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\na=setup:actpass\r\na=mid:audio1\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 OPUS/48000/2\r\n\
             m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=setup:actpass\r\na=mid:audio2\r\na=inactive\r\na=rtpmap:111 OPUS/48000/2\r\n"
        );
        let medias = parse_offer(&offer).expect("valid offer").medias;
        assert!(!medias[0].disabled);
        assert!(
            !medias[1].disabled,
            "port 0 with bundle-only asks to be bundled"
        );
        assert!(medias[2].disabled, "port 0 alone is a disabled section");
    }

    #[test]
    fn chooses_matching_profile_and_real_level() {
        let medias = parse_offer(CHROMIUM_WHEP).expect("valid offer").medias;
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
        let medias = parse_offer(offer).expect("valid offer").medias;
        assert!(choose_h264(&medias[0], None).is_none());
    }

    #[test]
    fn packetization_mode_0_is_not_usable() {
        let offer = format!("{CREDS}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=0\r\n");
        let offer = offer.as_str();
        let medias = parse_offer(offer).expect("valid offer").medias;
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
        let no_hash = CHROMIUM_WHEP.replace("a=fingerprint:sha-256 ", "a=fingerprint:");
        assert!(
            matches!(parse_offer(&no_hash), Err(OfferError::Malformed(m)) if m.contains("fingerprint"))
        );
        let bad_setup = CHROMIUM_WHEP.replace("a=setup:actpass", "a=setup:sideways");
        assert!(
            matches!(parse_offer(&bad_setup), Err(OfferError::Malformed(m)) if m.contains("setup"))
        );
    }
}
