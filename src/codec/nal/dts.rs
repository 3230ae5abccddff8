//! Decoding timestamps for H.264 and H.265 with B-frames, from the picture order count
//! (H.264 8.2.1.1, H.265 8.3.1), as HLS and MP4 need them: strictly increasing, never after
//! the presentation time. Without reordering DTS is PTS.
//!
//! A frame's POC gives its place in display order since the last POC reset (IDR, BLA), its
//! arrival its place in decode order. With the reorder depth R (the SPS's, else the largest
//! seen) and the frame duration d, the k-th frame after a reset at PTS t decodes at
//! t + (k - R) * d. d comes from the frame itself: its PTS and display place since the reset.
//! Each codec reads its slice headers into a [`Picture`].

/// Frame duration assumed until one is measured (30 fps on a 90 kHz clock).
const DEFAULT_DURATION: i64 = 3000;

/// What a picture's first slice header says about its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    /// The POC starts again here (H.264 IDR; H.265 IDR, BLA, the first CRA).
    pub reset: bool,
    pub poc_lsb: i64,
    pub log2_max_poc_lsb: u32,
    /// Later pictures' POC MSB is derived from this one's (H.264: a reference picture;
    /// H.265: TemporalId 0 and not RASL, RADL or a sub-layer non-reference picture).
    pub anchors_msb: bool,
    /// The SPS's reorder depth, if it gives one.
    pub reorder: Option<u32>,
    /// POC units per frame encoders use: 2 in H.264 (x264), 1 in H.265 (x265). An offset
    /// that is not a multiple lowers it.
    pub poc_step: i64,
}

#[derive(Debug)]
pub struct DtsExtractor {
    reset_pts: i64,
    reset_poc: i64,
    /// Frames since the last reset, in decode order.
    index: i64,
    prev_poc_msb: i64,
    prev_poc_lsb: i64,
    /// POC units per frame: 2 for frame coding as x264 writes it, 1 for x265.
    poc_step: i64,
    learned_reorder: i64,
    duration: i64,
    last_dts: Option<i64>,
}

impl Default for DtsExtractor {
    fn default() -> Self {
        DtsExtractor {
            reset_pts: 0,
            reset_poc: 0,
            index: 0,
            prev_poc_msb: 0,
            prev_poc_lsb: 0,
            poc_step: 0,
            learned_reorder: 0,
            duration: DEFAULT_DURATION,
            last_dts: None,
        }
    }
}

impl DtsExtractor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The DTS of an access unit with presentation time `pts`; `picture` is None when its
    /// order cannot be read (or the stream does not reorder), and DTS follows PTS.
    pub fn extract(&mut self, picture: Option<Picture>, pts: i64) -> i64 {
        let dts = match picture {
            Some(p) => self.by_poc(p, pts),
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

    fn by_poc(&mut self, p: Picture, pts: i64) -> i64 {
        let max_lsb = 1i64 << p.log2_max_poc_lsb;
        if p.reset {
            self.prev_poc_msb = 0;
            self.prev_poc_lsb = 0;
        }
        let (prev_msb, prev_lsb) = (self.prev_poc_msb, self.prev_poc_lsb);
        let msb = if p.poc_lsb < prev_lsb && prev_lsb - p.poc_lsb >= max_lsb / 2 {
            prev_msb + max_lsb
        } else if p.poc_lsb > prev_lsb && p.poc_lsb - prev_lsb > max_lsb / 2 {
            prev_msb - max_lsb
        } else {
            prev_msb
        };
        let poc = msb + p.poc_lsb;
        if p.anchors_msb || p.reset {
            self.prev_poc_msb = msb;
            self.prev_poc_lsb = p.poc_lsb;
        }
        let reorder = match p.reorder {
            Some(n) => i64::from(n),
            None => self.learned_reorder,
        };
        if p.reset {
            self.reset_pts = pts;
            self.reset_poc = poc;
            self.index = 0;
            return pts - reorder * self.duration;
        }
        self.index += 1;
        let rel = poc - self.reset_poc;
        if self.poc_step == 0 {
            self.poc_step = p.poc_step.max(1);
        }
        self.poc_step = gcd(self.poc_step, rel.abs());
        let display = rel / self.poc_step;
        if display > 0 && pts > self.reset_pts {
            self.duration = ((pts - self.reset_pts) / display).max(1);
        }
        self.learned_reorder = self.learned_reorder.max(self.index - display);
        let reorder = reorder.max(self.index - display);
        self.reset_pts + (self.index - reorder) * self.duration
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    match b {
        0 => a,
        _ => gcd(b, a % b),
    }
}
