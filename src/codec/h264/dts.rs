//! Decoding timestamps for H.264 with B-frames, from the picture order count (H.264
//! 8.2.1.1), as HLS and MP4 need them: strictly increasing, never after the presentation
//! time. Without reordering (POC type 2, Baseline) DTS is PTS.
//!
//! A frame's POC gives its place in display order since the last IDR, its arrival its place
//! in decode order. With the reorder depth R (the SPS's max_num_reorder_frames, else the
//! largest seen) and the frame duration d, the k-th frame after an IDR at PTS t decodes at
//! t + (k - R) * d. d comes from the frame itself: its PTS and display place since the IDR.

use bytes::Bytes;

use super::params::Sps;
use super::{nal_type, nal_type_of};
use crate::codec::bits::BitReader;
use crate::codec::nal::nal_to_rbsp;

/// Frame duration assumed until one is measured (30 fps on a 90 kHz clock).
const DEFAULT_DURATION: i64 = 3000;

#[derive(Debug, Default)]
pub struct DtsExtractor {
    /// PTS of the last IDR.
    idr_pts: i64,
    idr_poc: i64,
    /// Frames since the last IDR, in decode order.
    index: i64,
    prev_poc_msb: i64,
    prev_poc_lsb: i64,
    /// POC units per frame: 2 for frame coding as x264 and most encoders write it.
    poc_step: i64,
    learned_reorder: i64,
    duration: i64,
    last_dts: Option<i64>,
}

/// What the first slice header of a picture says about its order.
struct SliceInfo {
    idr: bool,
    reference: bool,
    poc_lsb: i64,
}

fn read_slice(nal: &[u8], sps: &Sps) -> Option<SliceInfo> {
    let header = *nal.first()?;
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
    Some(SliceInfo {
        idr,
        reference: header & 0x60 != 0,
        poc_lsb: r.bits(sps.log2_max_poc_lsb)? as i64,
    })
}

impl DtsExtractor {
    pub fn new() -> Self {
        DtsExtractor {
            poc_step: 2,
            duration: DEFAULT_DURATION,
            ..Default::default()
        }
    }

    /// The DTS of an access unit with presentation time `pts`.
    pub fn extract(&mut self, sps: Option<&Sps>, nals: &[Bytes], pts: i64) -> i64 {
        let dts = match sps.filter(|s| s.poc_type == 0) {
            Some(sps) => self.by_poc(sps, nals, pts).unwrap_or(pts),
            None => pts,
        };
        // Whatever the stream says, DTS never goes back and never passes PTS.
        let dts = match self.last_dts {
            Some(last) if dts <= last => (last + 1).min(pts),
            _ => dts.min(pts),
        };
        self.last_dts = Some(dts);
        dts
    }

    fn by_poc(&mut self, sps: &Sps, nals: &[Bytes], pts: i64) -> Option<i64> {
        let slice = nals
            .iter()
            .find(|n| matches!(n.first().map(|h| nal_type_of(*h)), Some(1 | 5)))?;
        let info = read_slice(slice, sps)?;
        let max_lsb = 1i64 << sps.log2_max_poc_lsb;
        if info.idr {
            self.prev_poc_msb = 0;
            self.prev_poc_lsb = 0;
        }
        let (prev_msb, prev_lsb) = (self.prev_poc_msb, self.prev_poc_lsb);
        let msb = if info.poc_lsb < prev_lsb && prev_lsb - info.poc_lsb >= max_lsb / 2 {
            prev_msb + max_lsb
        } else if info.poc_lsb > prev_lsb && info.poc_lsb - prev_lsb > max_lsb / 2 {
            prev_msb - max_lsb
        } else {
            prev_msb
        };
        let poc = msb + info.poc_lsb;
        if info.reference {
            self.prev_poc_msb = msb;
            self.prev_poc_lsb = info.poc_lsb;
        }
        let reorder = match sps.max_num_reorder_frames {
            Some(n) => i64::from(n),
            None => self.learned_reorder,
        };
        if info.idr {
            self.idr_pts = pts;
            self.idr_poc = poc;
            self.index = 0;
            return Some(pts - reorder * self.duration);
        }
        self.index += 1;
        let rel = poc - self.idr_poc;
        if rel > 0 && rel % self.poc_step != 0 {
            self.poc_step = 1;
        }
        let display = rel / self.poc_step;
        if display > 0 && pts > self.idr_pts {
            self.duration = ((pts - self.idr_pts) / display).max(1);
        }
        self.learned_reorder = self.learned_reorder.max(self.index - display);
        let reorder = reorder.max(self.index - display);
        Some(self.idr_pts + (self.index - reorder) * self.duration)
    }
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
            let dts = d.extract(if i % 2 == 0 { sps.as_ref() } else { None }, nals, pts);
            assert!(dts > last || dts == pts, "{dts} after {last}");
            assert!(dts <= pts);
            last = dts;
        }
    }
}
