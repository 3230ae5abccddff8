//! Codecs: one folder each, with what every protocol needs of them, and the one registry
//! that says which SDP media descriptions become tracks and how a track is described back.
//! RTSP ANNOUNCE, pulled RTSP sources and RTSP DESCRIBE all go through here.

pub mod av1;
pub mod bits;
pub mod frame;
pub mod g711;
pub mod g722;
pub mod h264;
pub mod h265;
pub mod lpcm;
pub mod mpa;
pub mod mpeg4audio;
pub mod nal;
pub mod opus;
pub mod sdp;
pub mod vp8;
pub mod vp9;

use h264::ParamSets;
use mpeg4audio::Mpeg4Audio;
use sdp::{MediaDesc, MediaKind};

/// What a track carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    H264(ParamSets),
    H265(h265::ParamSets),
    /// VP8 (RFC 7741), VP9 (RFC 9628), AV1: passed through packet by packet.
    Vp8,
    Vp9,
    Av1,
    Opus {
        channels: u16,
    },
    /// G.711 (RFC 3551 4.5.14): 8 kHz mono, one frame per packet.
    G711(g711::Law),
    /// G.722 (RFC 3551 4.5.2): 16 kHz mono on an 8 kHz RTP clock.
    G722,
    /// Linear PCM: L8, L16 or L24 at the track's clock rate.
    Lpcm {
        bit_depth: u8,
        channels: u16,
    },
    /// AAC and other MPEG-4 audio, RFC 3640 or LATM.
    Mpeg4Audio(Box<Mpeg4Audio>),
    /// MPEG-1/2 audio (MP3), passed through packet by packet.
    Mpa,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub codec: Codec,
    pub clock_rate: u32,
}

impl Track {
    pub fn h264(params: ParamSets) -> Self {
        Track {
            codec: Codec::H264(params),
            clock_rate: 90_000,
        }
    }

    pub fn h265(params: h265::ParamSets) -> Self {
        Track {
            codec: Codec::H265(params),
            clock_rate: h265::CLOCK_RATE,
        }
    }

    pub fn opus(channels: u16) -> Self {
        Track {
            codec: Codec::Opus { channels },
            clock_rate: opus::CLOCK_RATE,
        }
    }

    pub fn g711(law: g711::Law) -> Self {
        Track {
            codec: Codec::G711(law),
            clock_rate: g711::CLOCK_RATE,
        }
    }

    /// VP8, VP9 or AV1, which share the 90 kHz clock.
    pub fn video(codec: Codec) -> Self {
        Track {
            codec,
            clock_rate: 90_000,
        }
    }

    pub fn g722() -> Self {
        Track {
            codec: Codec::G722,
            clock_rate: g722::CLOCK_RATE,
        }
    }

    /// How this track's frames become RTP.
    pub fn packetizer(&self) -> frame::Packetizer {
        match &self.codec {
            Codec::H264(_) => frame::Packetizer::H264,
            Codec::H265(_) => frame::Packetizer::H265,
            Codec::Vp8 => frame::Packetizer::Vp8,
            Codec::Vp9 => frame::Packetizer::Vp9,
            Codec::Av1 | Codec::Mpa => frame::Packetizer::ReceivedOnly,
            Codec::Mpeg4Audio(a) => match &a.packing {
                mpeg4audio::Packing::Generic(headers) => frame::Packetizer::Mpeg4Generic(*headers),
                mpeg4audio::Packing::Latm { .. } => frame::Packetizer::Latm,
            },
            Codec::Opus { .. } | Codec::G711(_) | Codec::G722 | Codec::Lpcm { .. } => {
                frame::Packetizer::Single
            }
        }
    }

    pub fn is_video(&self) -> bool {
        matches!(
            self.codec,
            Codec::H264(_) | Codec::H265(_) | Codec::Vp8 | Codec::Vp9 | Codec::Av1
        )
    }

    /// For codecs passed through packet by packet: whether `payload`, the first packet of
    /// a frame, starts a key frame. None for the others.
    pub fn keyframe_detector(&self) -> Option<KeyframeDetector> {
        match self.codec {
            Codec::Vp8 => Some(|p| Ok(vp8::starts_keyframe(p)?)),
            Codec::Vp9 => Some(|p| Ok(vp9::starts_keyframe(p)?)),
            Codec::Av1 => Some(|p| Ok(av1::starts_keyframe(p)?)),
            _ => None,
        }
    }

    /// The rtpmap encoding name an SDP offer or answer uses for this codec.
    pub fn encoding(&self) -> &'static str {
        match &self.codec {
            Codec::H264(_) => "H264",
            Codec::H265(_) => h265::ENCODING,
            Codec::Vp8 => vp8::ENCODING,
            Codec::Vp9 => vp9::ENCODING,
            Codec::Av1 => av1::ENCODING,
            Codec::Opus { .. } => opus::ENCODING,
            Codec::G711(law) => law.encoding(),
            Codec::G722 => g722::ENCODING,
            Codec::Lpcm { bit_depth, .. } => lpcm::encoding(*bit_depth),
            Codec::Mpeg4Audio(a) => a.encoding(),
            Codec::Mpa => mpa::ENCODING,
        }
    }

    /// The codec's name in the control API, as MediaMTX spells it.
    pub fn api_name(&self) -> &'static str {
        match &self.codec {
            Codec::H264(_) => "H264",
            Codec::H265(_) => "H265",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::Av1 => "AV1",
            Codec::Opus { .. } => "Opus",
            Codec::G711(_) => "G711",
            Codec::G722 => "G722",
            Codec::Lpcm { .. } => "LPCM",
            Codec::Mpeg4Audio(_) => "MPEG-4 Audio",
            Codec::Mpa => "MPEG-1/2 Audio",
        }
    }

    /// The codec's name as people and logs say it.
    pub fn name(&self) -> &'static str {
        match &self.codec {
            Codec::H264(_) => "H.264",
            Codec::H265(_) => "H.265",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::Av1 => "AV1",
            Codec::Opus { .. } => "Opus",
            Codec::G711(law) => law.name(),
            Codec::G722 => "G.722",
            Codec::Lpcm { .. } => "LPCM",
            Codec::Mpeg4Audio(_) => "AAC (MPEG-4 audio)",
            Codec::Mpa => "MPEG audio (MP3)",
        }
    }
}

/// The codecs tracks can be made of, for messages.
pub const CARRIED: &str = "H.264, H.265, VP8, VP9 or AV1 video, and Opus, G.711 (PCMU/PCMA), \
     G.722, LPCM (L8/L16/L24), AAC (MPEG4-GENERIC, MP4A-LATM) or MP3 (MPA) audio";

/// Whether the first packet of a frame starts a key frame.
pub type KeyframeDetector = fn(&[u8]) -> Result<bool, FrameError>;

/// A packet of a pass-through codec that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty RTP payload")]
    Empty,
    #[error(transparent)]
    Vp8(#[from] vp8::Vp8Error),
    #[error(transparent)]
    Vp9(#[from] vp9::Vp9Error),
    #[error(transparent)]
    Av1(#[from] av1::Av1Error),
    #[error(transparent)]
    Mpa(#[from] mpa::MpaError),
}

/// Why a media description does not become a track.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    #[error("{kind} {codec}/{clock_rate} is not a codec hubcast carries ({CARRIED})")]
    Unsupported {
        kind: String,
        codec: String,
        clock_rate: u32,
    },
    #[error("broken sprop-parameter-sets ({0}); waiting for in-band SPS/PPS")]
    BadParams(String),
    #[error("{codec} audio is refused: {why}")]
    BadAudio { codec: String, why: String },
}

/// The track an SDP media description (RTSP ANNOUNCE, a camera's DESCRIBE) is. A broken
/// `sprop-parameter-sets` still gives an H.264 track, with the error to log.
pub fn track_from_sdp(m: &MediaDesc) -> Result<(Track, Option<TrackError>), TrackError> {
    match (&m.kind, m.codec.as_str()) {
        (MediaKind::Video, "H264") => Ok(match m.fmtp_param("sprop-parameter-sets") {
            None => (Track::h264(ParamSets::default()), None),
            Some(s) => match ParamSets::from_sprop(s) {
                Ok(p) => (Track::h264(p), None),
                Err(e) => (
                    Track::h264(ParamSets::default()),
                    Some(TrackError::BadParams(e.to_string())),
                ),
            },
        }),
        (MediaKind::Video, h265::ENCODING) if m.clock_rate == h265::CLOCK_RATE => {
            Ok(match h265::ParamSets::from_fmtp(|k| m.fmtp_param(k)) {
                Ok(p) => (Track::h265(p), None),
                Err(e) => (
                    Track::h265(h265::ParamSets::default()),
                    Some(TrackError::BadParams(e.to_string())),
                ),
            })
        }
        (MediaKind::Audio, mpeg4audio::GENERIC_ENCODING | mpeg4audio::LATM_ENCODING) => {
            let audio = Mpeg4Audio::from_sdp(m).map_err(|e| TrackError::BadAudio {
                codec: m.codec.clone(),
                why: e.to_string(),
            })?;
            Ok((
                Track {
                    codec: Codec::Mpeg4Audio(Box::new(audio)),
                    clock_rate: m.clock_rate,
                },
                None,
            ))
        }
        (MediaKind::Audio, mpa::ENCODING) if m.clock_rate == mpa::CLOCK_RATE => Ok((
            Track {
                codec: Codec::Mpa,
                clock_rate: mpa::CLOCK_RATE,
            },
            None,
        )),
        (MediaKind::Audio, name) if lpcm::bit_depth(name).is_some() => {
            let bit_depth = lpcm::bit_depth(name).unwrap_or(16);
            let channels = m.channels.unwrap_or(1);
            Ok((
                Track {
                    codec: Codec::Lpcm {
                        bit_depth,
                        channels,
                    },
                    clock_rate: m.clock_rate,
                },
                None,
            ))
        }
        (MediaKind::Video, vp8::ENCODING) if m.clock_rate == vp8::CLOCK_RATE => {
            Ok((Track::video(Codec::Vp8), None))
        }
        (MediaKind::Video, vp9::ENCODING) if m.clock_rate == vp9::CLOCK_RATE => {
            Ok((Track::video(Codec::Vp9), None))
        }
        (MediaKind::Video, av1::ENCODING) if m.clock_rate == av1::CLOCK_RATE => {
            Ok((Track::video(Codec::Av1), None))
        }
        (MediaKind::Audio, "OPUS") if m.clock_rate == opus::CLOCK_RATE => {
            Ok((Track::opus(opus::channels(m)), None))
        }
        (MediaKind::Audio, g722::ENCODING)
            if m.clock_rate == g722::CLOCK_RATE && m.channels.unwrap_or(1) == 1 =>
        {
            Ok((Track::g722(), None))
        }
        (MediaKind::Audio, name) if m.clock_rate == g711::CLOCK_RATE => {
            match g711::Law::from_encoding(name) {
                Some(law) if m.channels.unwrap_or(1) == 1 => Ok((Track::g711(law), None)),
                _ => Err(unsupported(m)),
            }
        }
        _ => Err(unsupported(m)),
    }
}

/// The tracks a publisher's or camera's medias give: the first usable video and the first
/// usable audio (WebRTC readers take one of each, as in MediaMTX), and what became of the
/// others.
#[derive(Debug, Default)]
pub struct Selection {
    pub tracks: Vec<Track>,
    /// Media index -> track index, for the medias taken.
    pub media_to_track: Vec<Option<u8>>,
    /// Media index and why it was not taken, or what to warn about one taken.
    pub notes: Vec<(usize, TrackError)>,
}

pub fn select_tracks(medias: &[MediaDesc]) -> Selection {
    let mut sel = Selection::default();
    for (i, m) in medias.iter().enumerate() {
        let taken = match track_from_sdp(m) {
            Ok((t, warning)) => {
                sel.notes.extend(warning.map(|w| (i, w)));
                let dup = sel.tracks.iter().any(|x| x.is_video() == t.is_video());
                (!dup).then_some(t)
            }
            Err(e) => {
                sel.notes.push((i, e));
                None
            }
        };
        match taken {
            Some(t) => {
                sel.media_to_track.push(Some(sel.tracks.len() as u8));
                sel.tracks.push(t);
            }
            None => sel.media_to_track.push(None),
        }
    }
    sel
}

fn unsupported(m: &MediaDesc) -> TrackError {
    TrackError::Unsupported {
        kind: m.kind.as_str().to_string(),
        codec: m.codec.clone(),
        clock_rate: m.clock_rate,
    }
}

/// The SDP media description of a track (for a DESCRIBE answer), with payload type `pt`
/// unless the codec has a static one.
pub fn sdp_for_track(t: &Track, pt: u8) -> MediaDesc {
    match &t.codec {
        Codec::H264(params) => {
            let mut fmtp = vec![("packetization-mode".to_string(), "1".to_string())];
            if let Some(sprop) = params.to_sprop() {
                fmtp.push(("sprop-parameter-sets".into(), sprop));
            }
            if let Some(plid) = params.profile_level_id() {
                fmtp.push(("profile-level-id".into(), plid));
            }
            MediaDesc {
                kind: MediaKind::Video,
                payload_type: pt,
                codec: "H264".into(),
                clock_rate: 90_000,
                channels: None,
                fmtp,
                control: None,
            }
        }
        Codec::H265(params) => MediaDesc {
            kind: MediaKind::Video,
            payload_type: pt,
            codec: h265::ENCODING.into(),
            clock_rate: h265::CLOCK_RATE,
            channels: None,
            fmtp: params.to_fmtp(),
            control: None,
        },
        Codec::Lpcm {
            bit_depth,
            channels,
        } => MediaDesc {
            kind: MediaKind::Audio,
            payload_type: lpcm::static_payload_type(*bit_depth, t.clock_rate, *channels)
                .unwrap_or(pt),
            codec: lpcm::encoding(*bit_depth).into(),
            clock_rate: t.clock_rate,
            channels: Some(*channels),
            fmtp: Vec::new(),
            control: None,
        },
        Codec::Mpeg4Audio(a) => MediaDesc {
            kind: MediaKind::Audio,
            payload_type: pt,
            codec: a.encoding().into(),
            clock_rate: t.clock_rate,
            channels: Some(u16::from(a.config.channels.max(1))),
            fmtp: a.fmtp(),
            control: None,
        },
        Codec::Mpa => MediaDesc {
            kind: MediaKind::Audio,
            payload_type: mpa::STATIC_PAYLOAD_TYPE,
            codec: mpa::ENCODING.into(),
            clock_rate: mpa::CLOCK_RATE,
            channels: None,
            fmtp: Vec::new(),
            control: None,
        },
        Codec::Vp8 | Codec::Vp9 | Codec::Av1 => MediaDesc {
            kind: MediaKind::Video,
            payload_type: pt,
            codec: t.encoding().into(),
            clock_rate: 90_000,
            channels: None,
            fmtp: Vec::new(),
            control: None,
        },
        Codec::Opus { channels } => {
            let (rtpmap_channels, fmtp) = opus::describe(*channels);
            MediaDesc {
                kind: MediaKind::Audio,
                payload_type: pt,
                codec: "OPUS".into(),
                clock_rate: opus::CLOCK_RATE,
                channels: Some(rtpmap_channels),
                fmtp,
                control: None,
            }
        }
        Codec::G711(law) => MediaDesc {
            kind: MediaKind::Audio,
            payload_type: law.static_payload_type(),
            codec: law.encoding().into(),
            clock_rate: g711::CLOCK_RATE,
            channels: Some(1),
            fmtp: Vec::new(),
            control: None,
        },
        Codec::G722 => MediaDesc {
            kind: MediaKind::Audio,
            payload_type: g722::STATIC_PAYLOAD_TYPE,
            codec: g722::ENCODING.into(),
            clock_rate: g722::CLOCK_RATE,
            channels: Some(1),
            fmtp: Vec::new(),
            control: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sdp::parse_media;

    #[test]
    fn camera_medias_become_tracks() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets=%%%,aOvjyyLA\r\n\
                   m=audio 0 RTP/AVP 0\r\n\
                   m=audio 0 RTP/AVP 8\r\n\
                   m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n\
                   m=audio 0 RTP/AVP 98\r\na=rtpmap:98 PCMU/16000\r\n";
        let medias = parse_media(sdp.as_bytes()).expect("sdp");
        let (h264, warning) = track_from_sdp(&medias[0]).expect("H.264");
        assert!(h264.is_video());
        assert!(matches!(warning, Some(TrackError::BadParams(_))));
        let codecs: Vec<_> = medias[1..]
            .iter()
            .map(|m| track_from_sdp(m).map(|(t, _)| t.codec))
            .collect();
        assert_eq!(codecs[0], Ok(Codec::G711(g711::Law::Mu)));
        assert_eq!(codecs[1], Ok(Codec::G711(g711::Law::A)));
        // AAC without the fmtp it needs is refused, saying what is missing.
        assert!(
            matches!(&codecs[2], Err(e @ TrackError::BadAudio { .. }) if e.to_string().contains("sizelength")),
            "{:?}",
            codecs[2]
        );
        assert!(codecs[3].is_err(), "PCMU at 16 kHz is not G.711");
    }

    #[test]
    fn tracks_describe_back_to_themselves() {
        for t in [
            Track::video(Codec::Vp8),
            Track::video(Codec::Vp9),
            Track::video(Codec::Av1),
            Track::opus(2),
            Track::opus(1),
            Track::g711(g711::Law::Mu),
            Track::g711(g711::Law::A),
            Track::g722(),
            Track::h265(h265::ParamSets::default()),
            Track {
                codec: Codec::Lpcm {
                    bit_depth: 16,
                    channels: 1,
                },
                clock_rate: 16_000,
            },
            Track {
                codec: Codec::Lpcm {
                    bit_depth: 24,
                    channels: 2,
                },
                clock_rate: 48_000,
            },
            Track {
                codec: Codec::Mpa,
                clock_rate: mpa::CLOCK_RATE,
            },
        ] {
            let m = sdp_for_track(&t, 97);
            assert_eq!(track_from_sdp(&m).map(|(t, _)| t), Ok(t));
        }
    }
}
