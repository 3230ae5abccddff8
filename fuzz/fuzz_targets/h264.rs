//! H.264 over RTP: the camera path (`Reframer`: depacketize, collect access units,
//! repacketize), the WebRTC publisher path (`H264Passthrough`), the bare `Depacketizer`,
//! `packetize_au`, and the SPS / sprop-parameter-sets parsers.
//!
//! Input layout:
//! - byte 0: flags. bit 0: the stream starts with parameter sets from an sprop string;
//!   bit 1: that string is taken from the input (u8 length + text), else a fixed real one.
//! - then packets, each: ctl (u8), length (u16 LE, clamped to what is left), payload.
//!   ctl bit 0 = marker, bit 1 = next timestamp, bits 2-3 = sequence step
//!   (+1, +1, duplicate/late, jump by the next byte), bit 4 = source restart (reset).
//!
//! Checked besides "no panic":
//! - every payload the reframer and the passthrough emit fits MAX_PAYLOAD;
//! - reframer output is well formed: au_start on the first packet of an AU, marker on the
//!   last, one timestamp per AU, and it depacketizes without errors;
//! - `packetize_au` round-trips the NALs the depacketizer produced.
#![no_main]

use bytes::Bytes;
use hubcast::codec::h264::{
    nal_type, nal_type_of, packetize_access_unit, AccessUnit, Depacketizer, OutPacket, ParamSets, Reframer, MAX_PAYLOAD,
};
use hubcast::codec::h264::passthrough::H264Passthrough;
use libfuzzer_sys::fuzz_target;

/// What x264 / ffmpeg put in the SDP for a 1280x720 High profile stream.
const X264_SPROP: &str = "Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA";

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

struct RtpIn {
    seq: u16,
    ts: u32,
    marker: bool,
    reset: bool,
    payload: Bytes,
}

fn packets(input: &mut Input) -> Vec<RtpIn> {
    let mut out = Vec::new();
    let (mut seq, mut ts) = (1000u16, 90_000u32);
    while let Some(ctl) = input.byte() {
        let len = {
            let lo = input.byte().unwrap_or(0);
            let hi = input.byte().unwrap_or(0);
            usize::from(u16::from_le_bytes([lo, hi]))
        };
        match (ctl >> 2) & 3 {
            0 | 1 => seq = seq.wrapping_add(1),
            2 => {}
            _ => seq = seq.wrapping_add(u16::from(input.byte().unwrap_or(0)) << 4),
        }
        if ctl & 2 != 0 {
            ts = ts.wrapping_add(3000);
        }
        let payload = Bytes::copy_from_slice(input.take(len));
        out.push(RtpIn {
            seq,
            ts,
            marker: ctl & 1 != 0,
            reset: ctl & 0x10 != 0,
            payload,
        });
    }
    out
}

fn check_params(p: &ParamSets) {
    if let Some((w, h)) = p.resolution() {
        assert!(w > 0 && h > 0);
    }
    let _ = p.profile_level_id();
    // from_sprop refuses an SPS shorter than its 4-byte header; in-band ones are not checked.
    let sps_ok = p.sps.as_ref().is_some_and(|s| s.len() >= 4);
    if let Some(s) = p.to_sprop().filter(|_| sps_ok) {
        let back = ParamSets::from_sprop(&s).expect("our own sprop must parse");
        assert_eq!(&back, p);
    }
}

/// Reframer output: sizes, AU flags, and it must depacketize cleanly.
fn check_reframer_output(out: &[OutPacket]) {
    let mut depack = Depacketizer::new();
    let mut nals = Vec::new();
    let mut in_au: Option<u32> = None;
    for p in out {
        assert!(p.payload.len() <= MAX_PAYLOAD, "{} bytes", p.payload.len());
        assert!(!p.payload.is_empty());
        match in_au {
            None => assert!(p.au_start, "AU does not start with au_start"),
            Some(ts) => {
                assert!(!p.au_start, "au_start inside an AU");
                assert_eq!(p.timestamp, ts, "timestamp changes inside an AU");
            }
        }
        in_au = (!p.marker).then_some(p.timestamp);
        nals.clear();
        depack
            .push(&p.payload, &mut nals)
            .expect("reframer output must depacketize");
    }
    assert!(in_au.is_none(), "last AU has no marker");
    assert!(!depack.has_partial());
}

/// NALs that the RTP payload format can carry as they are (types 1..=23).
fn sendable(nal: &Bytes) -> bool {
    matches!(nal_type_of(nal[0]), 1..=23)
}

fn round_trip(nals: &[Bytes], keyframe: bool) {
    let mut out = Vec::new();
    let total: usize = nals.iter().map(Bytes::len).sum();
    // The 3-byte limit makes one FU-A per data byte: only for small AUs, to keep it fast.
    let limits: &[usize] = if total < 4096 {
        &[MAX_PAYLOAD, 3, 100]
    } else {
        &[MAX_PAYLOAD, 100]
    };
    for &max in limits {
        out.clear();
        let au = AccessUnit {
            timestamp: 7,
            keyframe,
            nals: nals.to_vec(),
        };
        packetize_access_unit(&au, max, &mut out);
        let mut depack = Depacketizer::new();
        let mut back = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(p.payload.len() <= max.max(3), "{} > {max}", p.payload.len());
            assert_eq!(p.au_start, i == 0);
            assert_eq!(p.marker, i == out.len() - 1);
            depack
                .push(&p.payload, &mut back)
                .expect("depacketize own output");
        }
        let want: Vec<&Bytes> = nals.iter().filter(|n| !n.is_empty()).collect();
        let got: Vec<&Bytes> = back.iter().collect();
        assert_eq!(got, want, "max payload {max}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte().unwrap_or(0);
    let params = if flags & 1 != 0 {
        let sprop = if flags & 2 != 0 {
            let n = usize::from(input.byte().unwrap_or(0));
            String::from_utf8_lossy(input.take(n)).into_owned()
        } else {
            X264_SPROP.to_string()
        };
        ParamSets::from_sprop(&sprop).unwrap_or_default()
    } else {
        ParamSets::default()
    };
    check_params(&params);
    let pkts = packets(&mut input);

    let mut reframer = Reframer::new(params.clone());
    let mut passthrough = H264Passthrough::default();
    let mut depack = Depacketizer::new();
    let mut reframed = Vec::new();
    let mut passed = Vec::new();
    let mut passed_aus = Vec::new();
    let mut nals = Vec::new();
    let mut au: Vec<Bytes> = Vec::new();
    for p in &pkts {
        if p.reset {
            reframer.reset();
            depack.reset();
        }
        let _ = reframer.push_rtp_as_packets(p.seq, p.ts, p.marker, &p.payload, &mut reframed);
        if reframer.take_params_changed() {
            check_params(reframer.params());
        }

        let before = passed.len();
        let _ = passthrough.push_rtp(
            p.seq,
            p.ts,
            p.marker,
            &p.payload,
            &mut passed,
            &mut passed_aus,
        );
        for au in passed_aus.drain(..) {
            assert!(au.nals.iter().all(|n| !n.is_empty()));
        }
        for o in &passed[before..] {
            assert!(o.payload.len() <= MAX_PAYLOAD, "{} bytes", o.payload.len());
        }
        if passthrough.take_params_changed() {
            check_params(passthrough.params());
        }

        nals.clear();
        match depack.push(&p.payload, &mut nals) {
            Ok(()) => {
                for n in &nals {
                    assert!(!n.is_empty());
                    if nal_type_of(n[0]) == nal_type::SPS {
                        check_params(&ParamSets {
                            sps: Some(n.clone()),
                            pps: None,
                        });
                    }
                }
                au.extend(nals.iter().filter(|n| sendable(n)).cloned());
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(nals.is_empty(), "error after appending NALs");
            }
        }
        let _ = depack.take_discarded();
        if p.marker || au.len() > 64 {
            round_trip(&au, false);
            au.clear();
        }
    }
    round_trip(&au, true);
    check_reframer_output(&reframed);
    check_params(reframer.params());
    check_params(passthrough.params());
});
