//! VPS, SPS and PPS: from the SDP (`sprop-vps`, `sprop-sps`, `sprop-pps`, RFC 7798 7.1),
//! in band, and the profile, tier and level they give an SDP answer.

use base64::Engine as _;
use bytes::Bytes;

use super::nal_type;
use crate::codec::bits::BitReader;
use crate::codec::nal::{nal_to_rbsp, NalError, SPROP_BASE64};

/// VPS, SPS and PPS of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamSets {
    pub vps: Option<Bytes>,
    pub sps: Option<Bytes>,
    pub pps: Option<Bytes>,
}

/// The fmtp keys of the three parameter sets, in decoding order.
const SPROP_KEYS: [(&str, u8); 3] = [
    ("sprop-vps", nal_type::VPS),
    ("sprop-sps", nal_type::SPS),
    ("sprop-pps", nal_type::PPS),
];

/// Profile, tier and level, as an SDP's fmtp says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTierLevel {
    pub profile_id: u8,
    pub tier_flag: u8,
    pub level_id: u8,
}

impl ParamSets {
    /// From an SDP's fmtp: `fmtp(key)` gives a parameter's value. Each value is a
    /// comma-separated list of base64 NAL units; the first of the right type wins.
    pub fn from_fmtp<'a>(fmtp: impl Fn(&str) -> Option<&'a str>) -> Result<ParamSets, NalError> {
        let mut params = ParamSets::default();
        for (key, want) in SPROP_KEYS {
            let Some(value) = fmtp(key) else { continue };
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let nal = SPROP_BASE64
                    .decode(item)
                    .map_err(|e| NalError::BadSprop(format!("{key} {item:?}: {e}")))?;
                if nal.len() < 3 || super::nal_type_of(nal[0]) != want {
                    return Err(NalError::BadSprop(format!(
                        "{key} {item:?} is not a {} NAL unit",
                        key[6..].to_uppercase()
                    )));
                }
                let slot = match want {
                    nal_type::VPS => &mut params.vps,
                    nal_type::SPS => &mut params.sps,
                    _ => &mut params.pps,
                };
                slot.get_or_insert_with(|| Bytes::from(nal));
            }
        }
        Ok(params)
    }

    /// The fmtp parameters of the known sets, for an SDP we write.
    pub fn to_fmtp(&self) -> Vec<(String, String)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        SPROP_KEYS
            .iter()
            .zip([&self.vps, &self.sps, &self.pps])
            .filter_map(|((key, _), nal)| Some((key.to_string(), b64.encode(nal.as_ref()?))))
            .collect()
    }

    /// From the SPS's profile_tier_level (H.265 7.3.3): the general profile, tier and level.
    pub fn profile_tier_level(&self) -> Option<ProfileTierLevel> {
        // After the 2-byte NAL header: 1 byte of VPS id, sub-layer count and nesting flag,
        // 1 byte of profile space, tier and profile, 4 of compatibility flags, 6 of
        // constraint flags, then the level.
        let sps = self.sps.as_ref()?;
        let rbsp = nal_to_rbsp(&sps[..sps.len().min(40)]);
        let ptl = rbsp.get(3)?;
        Some(ProfileTierLevel {
            profile_id: ptl & 0x1F,
            tier_flag: (ptl >> 5) & 1,
            level_id: *rbsp.get(14)?,
        })
    }
}

/// What the DTS extractor needs of an SPS (H.265 7.3.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    pub separate_colour_plane: bool,
    pub log2_max_poc_lsb: u32,
    /// sps_max_num_reorder_pics of the highest sub-layer.
    pub max_num_reorder_pics: u32,
}

/// What the DTS extractor needs of a PPS (H.265 7.3.2.3.1) to find a slice's POC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pps {
    pub output_flag_present: bool,
    pub num_extra_slice_header_bits: u32,
}

impl Sps {
    pub fn parse(nal: &[u8]) -> Option<Sps> {
        let rbsp = nal_to_rbsp(nal.get(2..)?);
        let mut r = BitReader::new(&rbsp);
        r.bits(4)?; // sps_video_parameter_set_id
        let sub_layers = r.bits(3)? as u32; // sps_max_sub_layers_minus1
        r.bit()?; // sps_temporal_id_nesting_flag
        skip_profile_tier_level(&mut r, sub_layers)?;
        r.ue()?; // sps_seq_parameter_set_id
        let chroma_format_idc = r.ue()?;
        let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
        r.ue()?; // pic_width_in_luma_samples
        r.ue()?; // pic_height_in_luma_samples
        if r.flag()? {
            for _ in 0..4 {
                r.ue()?; // conformance window offsets
            }
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        let log2_max_poc_lsb = r.ue()? + 4;
        if log2_max_poc_lsb > 16 {
            return None;
        }
        let all_sub_layers = r.flag()?;
        let first = if all_sub_layers { 0 } else { sub_layers };
        let mut reorder = 0;
        for _ in first..=sub_layers {
            r.ue()?; // sps_max_dec_pic_buffering_minus1
            reorder = r.ue()?;
            r.ue()?; // sps_max_latency_increase_plus1
        }
        Some(Sps {
            separate_colour_plane,
            log2_max_poc_lsb: log2_max_poc_lsb as u32,
            max_num_reorder_pics: u32::try_from(reorder).ok().filter(|n| *n <= 16)?,
        })
    }
}

impl Pps {
    pub fn parse(nal: &[u8]) -> Option<Pps> {
        let rbsp = nal_to_rbsp(nal.get(2..nal.len().min(16))?);
        let mut r = BitReader::new(&rbsp);
        r.ue()?; // pps_pic_parameter_set_id
        r.ue()?; // pps_seq_parameter_set_id
        r.bit()?; // dependent_slice_segments_enabled_flag
        Some(Pps {
            output_flag_present: r.flag()?,
            num_extra_slice_header_bits: r.bits(3)? as u32,
        })
    }
}

/// profile_tier_level(1, max_sub_layers_minus1) (H.265 7.3.3).
fn skip_profile_tier_level(r: &mut BitReader, sub_layers: u32) -> Option<()> {
    r.bits(88)?; // general profile space, tier, profile, flags
    r.bits(8)?; // general_level_idc
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(sub_layers as usize) {
        *p = (r.flag()?, r.flag()?);
    }
    if sub_layers > 0 {
        for _ in sub_layers..8 {
            r.bits(2)?; // reserved_zero_2bits
        }
    }
    for (profile, level) in present.iter().take(sub_layers as usize) {
        if *profile {
            r.bits(88)?;
        }
        if *level {
            r.bits(8)?;
        }
    }
    Some(())
}
