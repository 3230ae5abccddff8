//! The order of an H.264 picture, from its first slice header (7.3.3), for the DTS
//! extractor H.264 and H.265 share. Only POC type 0 reorders in practice; types 1 and 2
//! (Baseline, most cameras) give no picture and DTS follows PTS.

use bytes::Bytes;

use super::params::Sps;
use super::{nal_type, nal_type_of};
use crate::codec::bits::BitReader;
use crate::codec::nal::dts::Picture;
use crate::codec::nal::nal_to_rbsp;

pub use crate::codec::nal::dts::DtsExtractor;

/// The picture an access unit holds, read from its first coded slice.
pub fn picture(sps: Option<&Sps>, nals: &[Bytes]) -> Option<Picture> {
    let sps = sps.filter(|s| s.poc_type == 0)?;
    let nal = nals
        .iter()
        .find(|n| matches!(n.first().map(|h| nal_type_of(*h)), Some(1 | 5)))?;
    let header = nal[0];
    // The fields needed are in the first bytes; do not copy a whole slice.
    let rbsp = nal_to_rbsp(nal.get(1..nal.len().min(33))?);
    let mut r = BitReader::new(&rbsp);
    r.ue()?; // first_mb_in_slice
    r.ue()?; // slice_type
    r.ue()?; // pic_parameter_set_id
    if sps.separate_colour_plane {
        r.bits(2)?;
    }
    r.bits(sps.log2_max_frame_num)?;
    if !sps.frame_mbs_only && r.flag()? {
        r.bit()?; // bottom_field_flag
    }
    let idr = nal_type_of(header) == nal_type::IDR;
    if idr {
        r.ue()?; // idr_pic_id
    }
    Some(Picture {
        reset: idr,
        poc_lsb: r.bits(sps.log2_max_poc_lsb)? as i64,
        log2_max_poc_lsb: sps.log2_max_poc_lsb,
        anchors_msb: header & 0x60 != 0,
        reorder: sps.max_num_reorder_frames,
        poc_step: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::h264::ParamSets;

    /// x264 High, 3 B-frames with a pyramid (tests/data/captures/ffmpeg-x264-bframes.sdp).
    const SPROP: &str = "Z2QAHqzZQKAv+XARAAADAAEAAAMAPA8WLZY=,aO+Pyw==";

    #[test]
    fn x264_sps_gives_poc_type_0_and_its_reorder_depth() {
        let params = ParamSets::from_sprop(SPROP).expect("sprop");
        let sps = Sps::parse(params.sps.as_deref().expect("sps")).expect("parses");
        assert_eq!((sps.width, sps.height), (640, 360));
        assert_eq!(sps.poc_type, 0);
        assert_eq!(sps.max_num_reorder_frames, Some(2));
    }

    #[test]
    fn broken_slices_and_no_sps_fall_back_to_pts_and_never_go_back() {
        let params = ParamSets::from_sprop(SPROP).expect("sprop");
        let sps = Sps::parse(params.sps.as_deref().expect("sps"));
        let mut d = DtsExtractor::new();
        let garbage = [
            vec![Bytes::from_static(&[0x65])],
            vec![Bytes::from_static(&[0x41, 0xff, 0xff])],
            vec![],
            vec![Bytes::from_static(&[0x06, 1, 2])],
        ];
        let mut last = i64::MIN;
        for (i, nals) in garbage.iter().cycle().take(40).enumerate() {
            let pts = 3000 * (i as i64 % 7);
            let pic = picture(if i % 2 == 0 { sps.as_ref() } else { None }, nals);
            let dts = d.extract(pic, pts);
            assert!(dts > last || dts == pts, "{dts} after {last}");
            assert!(dts <= pts);
            last = dts;
        }
    }
}
