//! SDP media descriptions as cameras, encoders and RTSP servers write them: read into
//! `MediaDesc`s (kind, payload type, codec, clock, fmtp, control), and written back for a
//! DESCRIBE answer. Shared by the RTSP server and the pulled RTSP source.

use sdp::description::media::MediaDescription;
use sdp::description::session::SessionDescription;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Audio,
    Other(String),
}

impl MediaKind {
    fn from_sdp(media: &str) -> MediaKind {
        match media {
            "video" => MediaKind::Video,
            "audio" => MediaKind::Audio,
            other => MediaKind::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MediaDesc {
    pub kind: MediaKind,
    pub payload_type: u8,
    /// Upper-case encoding name, e.g. "H264", "OPUS", "MPEG4-GENERIC".
    pub codec: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
    /// Parameters of "a=fmtp:<pt> k=v;k=v" for `payload_type`, in order.
    pub fmtp: Vec<(String, String)>,
    /// The media's a=control value.
    pub control: Option<String>,
}

impl MediaDesc {
    /// fmtp parameter names are case-insensitive (RFC 4855 3).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("invalid SDP: {0}")]
    Parse(String),
    #[error("SDP has no media (m=) line")]
    NoMedia,
    #[error("media {index}: {reason}")]
    BadMedia { index: usize, reason: String },
}

/// Parses a session description into one [`MediaDesc`] per m= line, each
/// describing the first payload type of its line.
pub fn parse_media(body: &[u8]) -> Result<Vec<MediaDesc>, SdpError> {
    // Cameras put Latin-1 into s= or i= now and then; those fields are not
    // used, so a stray byte should not reject the whole description.
    let text = String::from_utf8_lossy(body);
    let session = SessionDescription::unmarshal(&mut std::io::Cursor::new(text.as_bytes()))
        .map_err(|e| SdpError::Parse(e.to_string()))?;
    if session.media_descriptions.is_empty() {
        return Err(SdpError::NoMedia);
    }
    session
        .media_descriptions
        .iter()
        .enumerate()
        .map(|(index, md)| media_desc(md).map_err(|reason| SdpError::BadMedia { index, reason }))
        .collect()
}

fn media_desc(md: &MediaDescription) -> Result<MediaDesc, String> {
    let format = md
        .media_name
        .formats
        .first()
        .ok_or("m= line lists no payload type")?;
    let payload_type = format
        .parse::<u8>()
        .ok()
        .filter(|pt| *pt <= 127)
        .ok_or_else(|| format!("invalid payload type {format:?}"))?;
    let (codec, clock_rate, channels) = match attribute_for_pt(md, "rtpmap", payload_type) {
        Some(rtpmap) => parse_rtpmap(rtpmap)?,
        None => static_payload_type(payload_type)
            .ok_or_else(|| format!("dynamic payload type {payload_type} has no rtpmap"))?,
    };
    let fmtp = attribute_for_pt(md, "fmtp", payload_type)
        .map(parse_fmtp)
        .unwrap_or_default();
    let control = md
        .attribute("control")
        .flatten()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Ok(MediaDesc {
        kind: MediaKind::from_sdp(&md.media_name.media),
        payload_type,
        codec,
        clock_rate,
        channels,
        fmtp,
        control,
    })
}

/// The text after "<pt> " of the first `key` attribute for that payload type.
fn attribute_for_pt<'a>(md: &'a MediaDescription, key: &str, pt: u8) -> Option<&'a str> {
    md.attributes
        .iter()
        .filter(|a| a.key.eq_ignore_ascii_case(key))
        .filter_map(|a| a.value.as_deref())
        .find_map(|value| {
            let (first, rest) = value.trim().split_once([' ', '\t']).unwrap_or((value, ""));
            (first.parse::<u8>() == Ok(pt)).then(|| rest.trim())
        })
}

type CodecInfo = (String, u32, Option<u16>);

/// "<encoding name>/<clock rate>[/<channels>]".
fn parse_rtpmap(rtpmap: &str) -> Result<CodecInfo, String> {
    let bad = || format!("invalid rtpmap {rtpmap:?}");
    let mut parts = rtpmap.split('/').map(str::trim);
    let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
    let clock_rate = parts
        .next()
        .and_then(|r| r.parse::<u32>().ok())
        .filter(|r| *r > 0)
        .ok_or_else(bad)?;
    let channels = match parts.next() {
        None => None,
        Some(c) => Some(c.parse::<u16>().ok().filter(|c| *c > 0).ok_or_else(bad)?),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((name.to_ascii_uppercase(), clock_rate, channels))
}

/// RFC 3551 static payload types that publishers send without an rtpmap.
fn static_payload_type(pt: u8) -> Option<CodecInfo> {
    let (name, rate, channels) = match pt {
        0 => ("PCMU", 8000, Some(1)),
        3 => ("GSM", 8000, Some(1)),
        4 => ("G723", 8000, Some(1)),
        8 => ("PCMA", 8000, Some(1)),
        9 => ("G722", 8000, Some(1)),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, Some(1)),
        14 => ("MPA", 90000, None),
        26 => ("JPEG", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        _ => return None,
    };
    Some((name.to_string(), rate, channels))
}

/// "k=v; k=v": values keep their '=' (base64 in sprop-parameter-sets).
fn parse_fmtp(params: &str) -> Vec<(String, String)> {
    params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Builds the SDP answering DESCRIBE; media N gets control "trackID=N".
pub fn build_describe(medias: &[MediaDesc]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "v=0\r\no=- {} 0 IN IP4 127.0.0.1\r\ns=hubcast\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n",
        session_id(medias)
    );
    for (index, media) in medias.iter().enumerate() {
        write_media(&mut out, index, media);
    }
    out
}

fn write_media(out: &mut String, index: usize, m: &MediaDesc) {
    let pt = m.payload_type;
    let _ = write!(out, "m={} 0 RTP/AVP {pt}\r\n", sdp_token(m.kind.as_str()));
    let _ = write!(
        out,
        "a=rtpmap:{pt} {}/{}",
        encoding_name(&m.codec),
        m.clock_rate
    );
    if let Some(channels) = m.channels {
        let _ = write!(out, "/{channels}");
    }
    out.push_str("\r\n");
    if !m.fmtp.is_empty() {
        let params: Vec<String> = m
            .fmtp
            .iter()
            .map(|(k, v)| match v.is_empty() {
                true => sdp_line_safe(k),
                false => format!("{}={}", sdp_line_safe(k), sdp_line_safe(v)),
            })
            .collect();
        let _ = write!(out, "a=fmtp:{pt} {}\r\n", params.join("; "));
    }
    let _ = write!(out, "a=control:trackID={index}\r\n");
}

/// RFC 7587 spells the Opus encoding name in lower case and some players
/// compare it literally; other names are case-insensitive and kept as is.
fn encoding_name(codec: &str) -> String {
    if codec.eq_ignore_ascii_case("opus") {
        "opus".to_string()
    } else {
        sdp_line_safe(codec)
    }
}

/// Values come from a publisher's SDP; a line break in them would forge lines.
fn sdp_line_safe(s: &str) -> String {
    s.chars().filter(|c| *c != '\r' && *c != '\n').collect()
}

fn sdp_token(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).collect()
}

/// A stable id derived from the content (FNV-1a), so the same stream is
/// described identically and tests stay deterministic.
fn session_id(medias: &[MediaDesc]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for m in medias {
        feed(m.codec.as_bytes());
        feed(&[m.payload_type]);
        for (k, v) in &m.fmtp {
            feed(k.as_bytes());
            feed(v.as_bytes());
        }
    }
    // Keep it within i64 for players that parse the id as signed.
    hash >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_SDP: &str = include_str!("../../tests/data/captures/ffmpeg-x264-opus.sdp");

    const GSTREAMER_SDP: &str =
        include_str!("../../tests/data/captures/gstreamer-h264-h265-pcmu-aac.sdp");

    #[test]
    fn parses_ffmpeg_x264_and_opus() {
        let medias = parse_media(FFMPEG_SDP.as_bytes()).unwrap();
        assert_eq!(medias.len(), 2);
        let video = &medias[0];
        assert_eq!(video.kind, MediaKind::Video);
        assert_eq!(video.payload_type, 96);
        assert_eq!(video.codec, "H264");
        assert_eq!(video.clock_rate, 90000);
        assert_eq!(video.channels, None);
        assert_eq!(video.fmtp_param("packetization-mode"), Some("1"));
        assert_eq!(
            video.fmtp_param("sprop-parameter-sets"),
            Some("Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA")
        );
        assert_eq!(video.fmtp_param("PROFILE-LEVEL-ID"), Some("64001F"));
        assert_eq!(video.control.as_deref(), Some("streamid=0"));
        let audio = &medias[1];
        assert_eq!(audio.kind, MediaKind::Audio);
        assert_eq!(audio.payload_type, 97);
        assert_eq!(audio.codec, "OPUS");
        assert_eq!(audio.clock_rate, 48000);
        assert_eq!(audio.channels, Some(2));
        assert_eq!(
            audio.fmtp,
            vec![("sprop-stereo".to_string(), "1".to_string())]
        );
        assert_eq!(audio.control.as_deref(), Some("streamid=1"));
    }

    #[test]
    fn first_payload_type_static_types_and_other_kinds() {
        let medias = parse_media(GSTREAMER_SDP.as_bytes()).unwrap();
        assert_eq!(medias.len(), 4);
        // The first PT of the line (96) wins even though 97 is mapped first.
        assert_eq!(medias[0].payload_type, 96);
        assert_eq!(medias[0].codec, "H264");
        assert_eq!(medias[0].fmtp_param("profile-level-id"), Some("42e01f"));
        assert_eq!(medias[0].fmtp_param("sprop-vps"), None);
        assert_eq!(medias[1].codec, "PCMU");
        assert_eq!(medias[1].clock_rate, 8000);
        assert_eq!(medias[2].codec, "MPEG4-GENERIC");
        assert_eq!(medias[2].channels, Some(2));
        assert_eq!(medias[2].fmtp_param("config"), Some("1210"));
        assert_eq!(medias[3].kind, MediaKind::Other("application".to_string()));
        assert_eq!(medias[3].codec, "JPEG");
        assert_eq!(medias[3].control, None);
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        for (pt, codec, rate) in [
            (0, "PCMU", 8000),
            (8, "PCMA", 8000),
            (26, "JPEG", 90000),
            (14, "MPA", 90000),
            (32, "MPV", 90000),
        ] {
            let sdp = format!(
                "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP {pt}\r\n"
            );
            let medias = parse_media(sdp.as_bytes()).unwrap();
            assert_eq!(
                (medias[0].codec.as_str(), medias[0].clock_rate),
                (codec, rate)
            );
        }
    }

    fn with_media(media: &str) -> String {
        format!("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{media}")
    }

    #[test]
    fn not_sdp_is_an_error() {
        for body in [
            &b""[..],
            b"hello world",
            b"<html><body>nope</body></html>",
            b"{\"type\":\"offer\"}",
            b"\xff\xfe\x00garbage",
        ] {
            let err = parse_media(body).unwrap_err();
            assert!(matches!(err, SdpError::Parse(_)), "{body:?} -> {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn latin1_session_name_is_tolerated() {
        let sdp =
            b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=Cam\xe9ra\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\n";
        assert_eq!(parse_media(sdp).unwrap()[0].codec, "PCMA");
    }

    #[test]
    fn sdp_without_media_is_an_error() {
        let err = parse_media(with_media("a=tool:x\r\n").as_bytes()).unwrap_err();
        assert_eq!(err, SdpError::NoMedia);
    }

    #[test]
    fn truncated_sdp_is_an_error() {
        // Cut before t=, inside the m= line, and inside the o= line.
        for cut in ["s=No Name\r\n", "m=vid", "o=- 0"] {
            let end = FFMPEG_SDP.find(cut).unwrap() + cut.len();
            let err = parse_media(&FFMPEG_SDP.as_bytes()[..end]).unwrap_err();
            assert!(matches!(err, SdpError::Parse(_)), "cut at {cut:?}: {err:?}");
        }
    }

    #[test]
    fn bad_rtpmap_and_payload_type_are_errors() {
        for (media, needle) in [
            ("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264\r\n", "rtpmap"),
            ("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/abc\r\n", "rtpmap"),
            (
                "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 opus/48000/x\r\n",
                "rtpmap",
            ),
            ("m=audio 0 RTP/AVP 96\r\na=rtpmap:96 /48000\r\n", "rtpmap"),
            ("m=video 0 RTP/AVP 96\r\n", "no rtpmap"),
            (
                "m=video 0 RTP/AVP 96\r\na=rtpmap:97 H264/90000\r\n",
                "no rtpmap",
            ),
            ("m=video 0 RTP/AVP 200\r\n", "payload type"),
            ("m=video 0 RTP/AVP abc\r\n", "payload type"),
        ] {
            let err = parse_media(with_media(media).as_bytes()).unwrap_err();
            assert!(
                matches!(err, SdpError::BadMedia { index: 0, .. }),
                "{media:?} -> {err:?}"
            );
            assert!(err.to_string().contains(needle), "{media:?} -> {err}");
        }
    }

    #[test]
    fn describe_answer_round_trips() {
        let medias = parse_media(FFMPEG_SDP.as_bytes()).unwrap();
        let sdp = build_describe(&medias);
        let id = session_id(&medias);
        let expected = format!(
            "v=0\r\no=- {id} 0 IN IP4 127.0.0.1\r\ns=hubcast\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA; profile-level-id=64001F\r\n\
a=control:trackID=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
a=rtpmap:97 opus/48000/2\r\n\
a=fmtp:97 sprop-stereo=1\r\n\
a=control:trackID=1\r\n"
        );
        assert_eq!(sdp, expected);

        let again = parse_media(sdp.as_bytes()).unwrap();
        assert_eq!(again.len(), 2);
        for (a, b) in medias.iter().zip(&again) {
            assert_eq!(
                (
                    &a.kind,
                    a.payload_type,
                    &a.codec,
                    a.clock_rate,
                    a.channels,
                    &a.fmtp
                ),
                (
                    &b.kind,
                    b.payload_type,
                    &b.codec,
                    b.clock_rate,
                    b.channels,
                    &b.fmtp
                )
            );
        }
        assert_eq!(again[1].control.as_deref(), Some("trackID=1"));
    }

    #[test]
    fn describe_does_not_let_values_forge_lines() {
        let m = MediaDesc {
            kind: MediaKind::Video,
            payload_type: 96,
            codec: "H264".to_string(),
            clock_rate: 90000,
            channels: None,
            fmtp: vec![("a".to_string(), "1\r\na=injected".to_string())],
            control: None,
        };
        let sdp = build_describe(&[m]);
        assert!(!sdp.contains("\r\na=injected"), "{sdp}");
    }
}
