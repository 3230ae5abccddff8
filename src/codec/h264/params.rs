//! SPS and PPS: from the SDP (`sprop-parameter-sets`), in band, and what they say
//! (profile-level-id, picture size).

use base64::Engine as _;
use bytes::Bytes;

use super::*;
pub(super) use crate::codec::bits::BitReader;
pub(super) use crate::codec::nal::{nal_to_rbsp, SPROP_BASE64};

/// SPS and PPS of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamSets {
    pub sps: Option<Bytes>,
    pub pps: Option<Bytes>,
}

impl ParamSets {
    /// From an SDP fmtp `sprop-parameter-sets=` value (comma-separated
    /// base64 NALs). NALs other than SPS/PPS are ignored; the first SPS and
    /// PPS win.
    pub fn from_sprop(value: &str) -> Result<ParamSets, H264Error> {
        let mut params = ParamSets::default();
        for (index, item) in value.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            let nal = SPROP_BASE64
                .decode(item)
                .map_err(|e| H264Error::BadSprop(format!("NAL {index} {item:?}: {e}")))?;
            let Some(&header) = nal.first() else {
                return Err(H264Error::BadSprop(format!("NAL {index} is empty")));
            };
            match nal_type_of(header) {
                nal_type::SPS if params.sps.is_none() => {
                    // profile_level_id() and every decoder need these bytes.
                    if nal.len() < 4 {
                        return Err(H264Error::BadSprop(format!(
                            "SPS {index} is {} bytes, shorter than its 4-byte header",
                            nal.len()
                        )));
                    }
                    params.sps = Some(Bytes::from(nal));
                }
                nal_type::PPS if params.pps.is_none() => params.pps = Some(Bytes::from(nal)),
                _ => {}
            }
        }
        Ok(params)
    }

    /// `sprop-parameter-sets` value for an SDP we generate (None unless both
    /// are known).
    pub fn to_sprop(&self) -> Option<String> {
        let (sps, pps) = (self.sps.as_ref()?, self.pps.as_ref()?);
        let b64 = base64::engine::general_purpose::STANDARD;
        Some(format!("{},{}", b64.encode(sps), b64.encode(pps)))
    }

    /// 6 hex chars (profile_idc, constraint flags, level_idc), e.g. "42c01f".
    pub fn profile_level_id(&self) -> Option<String> {
        let bytes = self.sps.as_ref()?.get(1..4)?;
        Some(format!("{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2]))
    }

    /// Width and height decoded from the SPS; None on a missing or broken SPS.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        sps_resolution(self.sps.as_ref()?)
    }
}

/// Profiles whose SPS carries chroma format, bit depth and scaling lists.
pub(super) fn has_chroma_fields(profile_idc: u64) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()?).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Chroma format, or None where the spec forbids the value.
fn skip_chroma_fields(r: &mut BitReader) -> Option<(u64, bool)> {
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return None;
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    r.ue()?; // bit_depth_luma_minus8
    r.ue()?; // bit_depth_chroma_minus8
    r.bit()?; // qpprime_y_zero_transform_bypass_flag
    if r.flag()? {
        let lists = if chroma_format_idc == 3 { 12 } else { 8 };
        for i in 0..lists {
            if r.flag()? {
                skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
            }
        }
    }
    Some((chroma_format_idc, separate_colour_plane))
}

/// pic_order_cnt_type, and log2_max_pic_order_cnt_lsb for type 0.
fn read_pic_order_cnt(r: &mut BitReader) -> Option<(u8, u32)> {
    match r.ue()? {
        0 => {
            let log2_lsb = r.ue()? + 4;
            if log2_lsb > 16 {
                return None;
            }
            Some((0, log2_lsb as u32))
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
            Some((1, 0))
        }
        2 => Some((2, 0)),
        _ => None,
    }
}

/// What the reframer and the DTS extractor need of an SPS (H.264 7.3.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    pub width: u32,
    pub height: u32,
    pub separate_colour_plane: bool,
    pub log2_max_frame_num: u32,
    pub poc_type: u8,
    pub log2_max_poc_lsb: u32,
    pub frame_mbs_only: bool,
    /// From the VUI's bitstream restriction, when the encoder wrote one (x264 does).
    pub max_num_reorder_frames: Option<u32>,
}

impl Sps {
    pub fn parse(nal: &[u8]) -> Option<Sps> {
        if nal_type_of(*nal.first()?) != nal_type::SPS {
            return None;
        }
        let rbsp = nal_to_rbsp(nal.get(1..)?);
        let mut r = BitReader::new(&rbsp);
        let profile_idc = r.bits(8)?;
        r.bits(16)?; // constraint flags, level_idc
        r.ue()?; // seq_parameter_set_id
        let (chroma_format_idc, separate_colour_plane) = if has_chroma_fields(profile_idc) {
            skip_chroma_fields(&mut r)?
        } else {
            (1, false)
        };
        let log2_max_frame_num = r.ue()? + 4;
        if log2_max_frame_num > 16 {
            return None;
        }
        let (poc_type, log2_max_poc_lsb) = read_pic_order_cnt(&mut r)?;
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue()? + 1;
        let height_map_units = r.ue()? + 1;
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let (left, right, top, bottom) = if r.flag()? {
            (r.ue()?, r.ue()?, r.ue()?, r.ue()?)
        } else {
            (0, 0, 0, 0)
        };
        // A VUI that cannot be read only loses the reorder depth, not the picture size.
        let max_num_reorder_frames = match r.flag() {
            Some(true) => read_vui_reorder(&mut r),
            _ => None,
        };

        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_x, crop_y) = if separate_colour_plane || chroma_format_idc == 0 {
            (1, field_factor)
        } else {
            let sub_width = if chroma_format_idc == 3 { 1 } else { 2 };
            let sub_height = if chroma_format_idc == 1 { 2 } else { 1 };
            (sub_width, sub_height * field_factor)
        };
        // Values are < 2^33, so these products cannot overflow u64.
        let width = (width_mbs * 16).checked_sub(crop_x * (left + right))?;
        let height = (height_map_units * 16 * field_factor).checked_sub(crop_y * (top + bottom))?;
        if width == 0 || height == 0 {
            return None;
        }
        Some(Sps {
            profile_idc: profile_idc as u8,
            width: u32::try_from(width).ok()?,
            height: u32::try_from(height).ok()?,
            separate_colour_plane,
            log2_max_frame_num: log2_max_frame_num as u32,
            poc_type,
            log2_max_poc_lsb,
            frame_mbs_only,
            max_num_reorder_frames,
        })
    }
}

/// max_num_reorder_frames from the VUI (H.264 E.1.1), if it has a bitstream restriction.
fn read_vui_reorder(r: &mut BitReader) -> Option<u32> {
    if r.flag()? && r.bits(8)? == 255 {
        r.bits(32)?; // sar_width, sar_height
    }
    if r.flag()? {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.bits(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.flag()? {
        r.ue()?;
        r.ue()?; // chroma_sample_loc_type top and bottom
    }
    if r.flag()? {
        r.bits(32)?; // num_units_in_tick
        r.bits(33)?; // time_scale, fixed_frame_rate_flag
    }
    let nal_hrd = r.flag()?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.flag()?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.bit()?; // low_delay_hrd_flag
    }
    r.bit()?; // pic_struct_present_flag
    if !r.flag()? {
        return None;
    }
    r.bit()?; // motion_vectors_over_pic_boundaries_flag
    for _ in 0..4 {
        r.ue()?; // max_bytes_per_pic_denom .. log2_max_mv_length_vertical
    }
    let reorder = r.ue()?;
    u32::try_from(reorder).ok().filter(|n| *n <= 16)
}

fn skip_hrd(r: &mut BitReader) -> Option<()> {
    let cpb_cnt = r.ue()? + 1;
    if cpb_cnt > 32 {
        return None;
    }
    r.bits(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?; // bit_rate_value_minus1
        r.ue()?; // cpb_size_value_minus1
        r.bit()?; // cbr_flag
    }
    r.bits(20)?; // four delay and offset lengths
    Some(())
}

/// Cropped picture size from an SPS NAL (H.264 7.3.2.1.1 and 7.4.2.1.1).
fn sps_resolution(nal: &[u8]) -> Option<(u32, u32)> {
    Sps::parse(nal).map(|s| (s.width, s.height))
}
