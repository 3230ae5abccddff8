//! The order of an H.265 picture, from its first slice segment header (7.3.6.1), for the
//! DTS extractor H.264 and H.265 share (x265 writes B-frames by default).

use bytes::Bytes;

use super::params::{Pps, Sps};
use super::{layer_and_tid, nal_type_of};
use crate::codec::bits::BitReader;
use crate::codec::nal::dts::Picture;
use crate::codec::nal::nal_to_rbsp;

const IDR_W_RADL: u8 = 19;
const IDR_N_LP: u8 = 20;
const CRA: u8 = 21;

/// The picture an access unit holds, read from its first slice segment. `first` says
/// whether it is the first picture of the stream (a CRA there starts the POC anew).
pub fn picture(
    sps: Option<&Sps>,
    pps: Option<&Pps>,
    nals: &[Bytes],
    first: bool,
) -> Option<Picture> {
    let (sps, pps) = (sps?, pps?);
    let nal = nals
        .iter()
        .find(|n| n.len() > 2 && nal_type_of(n[0]) <= 31)?;
    let kind = nal_type_of(nal[0]);
    let rbsp = nal_to_rbsp(nal.get(2..nal.len().min(34))?);
    let mut r = BitReader::new(&rbsp);
    if !r.flag()? {
        return None; // not the first slice segment of its picture
    }
    if (16..=23).contains(&kind) {
        r.bit()?; // no_output_of_prior_pics_flag
    }
    r.ue()?; // slice_pic_parameter_set_id
    r.bits(pps.num_extra_slice_header_bits)?;
    r.ue()?; // slice_type
    if pps.output_flag_present {
        r.bit()?; // pic_output_flag
    }
    if sps.separate_colour_plane {
        r.bits(2)?; // colour_plane_id
    }
    let idr = kind == IDR_W_RADL || kind == IDR_N_LP;
    let poc_lsb = if idr {
        0
    } else {
        r.bits(sps.log2_max_poc_lsb)? as i64
    };
    let (_, tid_plus1) = layer_and_tid(nal);
    // RADL, RASL and sub-layer non-reference pictures (even types below 16) do not anchor
    // the POC MSB of later pictures (8.3.1).
    let leading_or_non_ref = (6..=9).contains(&kind) || (kind < 16 && kind.is_multiple_of(2));
    Some(Picture {
        reset: idr || (16..=18).contains(&kind) || (kind == CRA && first),
        poc_lsb,
        log2_max_poc_lsb: sps.log2_max_poc_lsb,
        anchors_msb: tid_plus1 == 1 && !leading_or_non_ref,
        reorder: Some(sps.max_num_reorder_pics),
        poc_step: 1,
    })
}
