//! MPEG-4 audio (AAC) over RTP, the two ways cameras and encoders send it: RFC 3640
//! (`MPEG4-GENERIC`, AAC-hbr: most cameras, ffmpeg, GStreamer) and RFC 6416 (`MP4A-LATM`,
//! some encoders, ffmpeg with `-rtpflags latm`). Either way a unit is one access unit
//! (1024 samples, or 960), and readers get it packed back the way it came in.

use bytes::Bytes;

use super::bits::BitReader;
use super::sdp::MediaDesc;

mod config;
pub mod generic;
pub mod latm;

pub use config::AudioConfig;

pub const GENERIC_ENCODING: &str = "MPEG4-GENERIC";
pub const LATM_ENCODING: &str = "MP4A-LATM";

/// An access unit larger than this is refused: AAC frames are a few hundred bytes, and a
/// fragmented one must not pin unbounded memory.
pub const MAX_AU_SIZE: usize = 64 * 1024;

/// How the stream is packed into RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packing {
    /// RFC 3640, with the AU header fields the fmtp gives.
    Generic(generic::AuHeaders),
    /// RFC 6416 with the StreamMuxConfig out of band (`cpresent=0`).
    Latm {
        mux_config: Bytes,
        sub_frames: u8,
        /// RFC 6416 7.1: 30 when the fmtp has none.
        profile_level_id: String,
    },
}

/// An MPEG-4 audio track: what it is (the AudioSpecificConfig) and how it is packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mpeg4Audio {
    pub config: AudioConfig,
    pub packing: Packing,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mpeg4AudioError {
    #[error("MPEG-4 audio fmtp has no {0}")]
    Missing(&'static str),
    #[error("MPEG-4 audio fmtp {key}={value:?} is not usable: {why}")]
    BadParam {
        key: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("AudioSpecificConfig {0:02x?} is broken or truncated")]
    BadConfig(Vec<u8>),
    #[error("StreamMuxConfig {0}")]
    BadMuxConfig(String),
    #[error("RTP payload of {len} bytes is shorter than its AU headers ({need} bytes)")]
    ShortPayload { len: usize, need: usize },
    #[error("AU sizes add up to {sizes} bytes but the packet carries {data}")]
    SizesPastEnd { sizes: usize, data: usize },
    #[error("AU fragment without its first part")]
    FragmentWithoutStart,
    #[error("fragmented AU of {have} bytes does not match its announced size {want}")]
    FragmentMismatch { have: usize, want: usize },
    #[error("access unit of at least {0} bytes exceeds the {MAX_AU_SIZE}-byte limit")]
    TooLarge(usize),
    #[error("LATM frame ends inside its payload length ({0} bytes)")]
    LatmTruncated(usize),
}

impl Mpeg4Audio {
    /// From a media description with rtpmap `MPEG4-GENERIC` or `MP4A-LATM`.
    pub fn from_sdp(m: &MediaDesc) -> Result<Mpeg4Audio, Mpeg4AudioError> {
        if m.codec == LATM_ENCODING {
            return latm::from_sdp(m);
        }
        let length = |key: &'static str, default: Option<u8>| -> Result<u8, Mpeg4AudioError> {
            match m.fmtp_param(key) {
                None => default.ok_or(Mpeg4AudioError::Missing(key)),
                Some(v) => v
                    .parse::<u8>()
                    .ok()
                    .filter(|n| *n <= 16)
                    .ok_or_else(|| bad(key, v, "not a bit count of 0 to 16")),
            }
        };
        let size_length = length("sizelength", None)?;
        if size_length == 0 {
            return Err(bad("sizelength", "0", "AU sizes are needed"));
        }
        let index_length = length("indexlength", Some(0))?;
        let index_delta_length = length("indexdeltalength", Some(0))?;
        for key in [
            "ctsdeltalength",
            "dtsdeltalength",
            "randomaccessindication",
            "streamstateindication",
        ] {
            if let Some(v) = m.fmtp_param(key).filter(|v| *v != "0") {
                return Err(bad(
                    key,
                    v,
                    "AU header fields other than size and index are not read",
                ));
            }
        }
        let hex = m
            .fmtp_param("config")
            .ok_or(Mpeg4AudioError::Missing("config"))?;
        let raw = decode_hex(hex).ok_or_else(|| bad("config", hex, "not hex"))?;
        Ok(Mpeg4Audio {
            config: AudioConfig::parse(Bytes::from(raw))?,
            packing: Packing::Generic(generic::AuHeaders {
                size_length,
                index_length,
                index_delta_length,
            }),
        })
    }

    pub fn encoding(&self) -> &'static str {
        match self.packing {
            Packing::Generic(_) => GENERIC_ENCODING,
            Packing::Latm { .. } => LATM_ENCODING,
        }
    }

    /// The fmtp of a DESCRIBE answer: readers get the stream packed as it came in.
    pub fn fmtp(&self) -> Vec<(String, String)> {
        let kv = |k: &str, v: String| (k.to_string(), v);
        match &self.packing {
            Packing::Generic(h) => vec![
                kv("streamtype", "5".into()),
                kv("profile-level-id", "1".into()),
                kv("mode", "AAC-hbr".into()),
                kv("sizelength", h.size_length.to_string()),
                kv("indexlength", h.index_length.to_string()),
                kv("indexdeltalength", h.index_delta_length.to_string()),
                kv("config", encode_hex(&self.config.raw)),
            ],
            Packing::Latm {
                mux_config,
                profile_level_id,
                ..
            } => vec![
                kv("profile-level-id", profile_level_id.clone()),
                kv("cpresent", "0".into()),
                kv("object", self.config.object_type.to_string()),
                kv("config", encode_hex(mux_config)),
            ],
        }
    }

    /// RTP clock ticks an access unit lasts at `clock_rate`.
    pub fn ticks_per_au(&self, clock_rate: u32) -> u32 {
        self.config.ticks_per_frame(clock_rate)
    }
}

fn bad(key: &'static str, value: &str, why: &'static str) -> Mpeg4AudioError {
    Mpeg4AudioError::BadParam {
        key,
        value: value.to_string(),
        why,
    }
}

pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 512 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests;
