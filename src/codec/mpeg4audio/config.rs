//! The AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): object type, sampling rate,
//! channels, and the frame length a timestamp step follows.

use bytes::Bytes;

use super::{BitReader, Mpeg4AudioError};

const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Object types (AAC LC, SBR, PS...) that carry a GASpecificConfig with the frame length.
const GA_TYPES: [u8; 12] = [1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23];
const SBR: u8 = 5;
const PS: u8 = 29;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// The config as it came, for SDP answers and decoders.
    pub raw: Bytes,
    /// The core object type (2 is AAC LC), under SBR or PS if those are signalled.
    pub object_type: u8,
    /// The core sampling rate.
    pub sample_rate: u32,
    /// The output rate with SBR (HE-AAC), else the core rate.
    pub output_rate: u32,
    /// 0 when the channel layout is given in the bitstream instead.
    pub channels: u8,
    /// Samples per frame at the core rate: 1024, or 960.
    pub frame_samples: u32,
}

pub(super) struct Fields {
    pub object_type: u8,
    pub sample_rate: u32,
    pub output_rate: u32,
    pub channels: u8,
    pub frame_samples: u32,
    /// Every field was read, so what follows in a StreamMuxConfig can be read too.
    pub complete: bool,
}

fn object_type(r: &mut BitReader) -> Option<u8> {
    let t = r.bits(5)? as u8;
    Some(if t == 31 { 32 + r.bits(6)? as u8 } else { t })
}

fn sample_rate(r: &mut BitReader) -> Option<u32> {
    match r.bits(4)? {
        15 => Some(r.bits(24)? as u32).filter(|r| *r > 0),
        i => RATES.get(i as usize).copied(),
    }
}

pub(super) fn read(r: &mut BitReader) -> Option<Fields> {
    let mut object = object_type(r)?;
    let rate = sample_rate(r)?;
    let channels = r.bits(4)? as u8;
    let mut output_rate = rate;
    if object == SBR || object == PS {
        output_rate = sample_rate(r)?;
        object = object_type(r)?;
    }
    let mut frame_samples = 1024;
    let mut complete = false;
    if GA_TYPES.contains(&object) {
        // GASpecificConfig (14496-3 4.4.1).
        if r.flag()? {
            frame_samples = 960;
        }
        if r.flag()? {
            r.bits(14)?; // coreCoderDelay
        }
        let extension = r.flag()?;
        // A program config element gives the layout; what follows it is not needed here.
        if channels != 0 {
            if object == 6 || object == 20 {
                r.bits(3)?; // layerNr
            }
            if extension {
                if object == 22 {
                    r.bits(16)?; // numOfSubFrame, layer_length
                }
                if matches!(object, 17 | 19 | 20 | 23) {
                    r.bits(3)?; // resilience flags
                }
                r.bits(1)?; // extensionFlag3
            }
            if matches!(object, 17 | 19..=27) {
                r.bits(2)?; // epConfig
            }
            complete = true;
        }
    }
    Some(Fields {
        object_type: object,
        sample_rate: rate,
        output_rate,
        channels,
        frame_samples,
        complete,
    })
}

impl AudioConfig {
    pub fn parse(raw: Bytes) -> Result<AudioConfig, Mpeg4AudioError> {
        let f = read(&mut BitReader::new(&raw))
            .ok_or_else(|| Mpeg4AudioError::BadConfig(raw.to_vec()))?;
        Ok(AudioConfig::from_fields(raw, f))
    }

    pub(super) fn from_fields(raw: Bytes, f: Fields) -> AudioConfig {
        AudioConfig {
            raw,
            object_type: f.object_type,
            sample_rate: f.sample_rate,
            output_rate: f.output_rate,
            channels: f.channels,
            frame_samples: f.frame_samples,
        }
    }

    /// RTP clock ticks one frame lasts at `clock_rate` (the rtpmap rate: the core rate, or
    /// the SBR output rate, at which a frame is twice as many samples).
    pub fn ticks_per_frame(&self, clock_rate: u32) -> u32 {
        let rate = u64::from(self.sample_rate.max(1));
        (u64::from(self.frame_samples) * u64::from(clock_rate) / rate) as u32
    }
}
