//! Real captures (tests/data/captures, made with scripts/capture-rtp.py from ffmpeg)
//! replayed through the ingest code without sockets, as retina replays its testdata: each
//! codec's SDP becomes its track, its RTP becomes units with the right timing and marks, and
//! what readers get reads back to the same media.

use std::sync::Arc;

use bytes::Bytes;
use hubcast::codec::frame::Frame;
use hubcast::codec::mpeg4audio::{generic, latm, Packing};
use hubcast::codec::nal::{Depacketizer, NalCodec};
use hubcast::codec::sdp::parse_media;
use hubcast::codec::{h265, select_tracks, Codec};
use hubcast::stream::ingest::{H264Mode, Ingest};
use hubcast::stream::{Hub, Packet, RtpFormat, Track};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/captures");

fn packets(name: &str) -> Vec<Bytes> {
    let raw = std::fs::read(format!("{DIR}/{name}.rtp")).expect("capture");
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= raw.len() {
        let len = u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize;
        out.push(Bytes::copy_from_slice(&raw[at + 4..at + 4 + len]));
        at += 4 + len;
    }
    out
}

/// The capture's track and the units its packets make.
fn replay(name: &str) -> (Track, Vec<Packet>) {
    let sdp = std::fs::read(format!("{DIR}/{name}.sdp")).expect("sdp");
    let medias = parse_media(&sdp).expect("parse");
    let sel = select_tracks(&medias);
    assert_eq!(sel.tracks.len(), 1, "{name}: {:?}", sel.notes);
    let hub = Hub::new(name, sel.tracks.clone(), 8192);
    let mut reader = hub.add_reader().expect("reader");
    let mut ingest = Ingest::new(Arc::clone(&hub), &sel.media_to_track, H264Mode::Reframe);
    for p in packets(name) {
        ingest.push_rtp(0, &p).expect(name);
    }
    let units: Vec<Packet> = std::iter::from_fn(|| reader.try_recv()).collect();
    (sel.tracks[0].clone(), units)
}

fn steps(units: &[Packet]) -> Vec<i64> {
    units.windows(2).map(|w| w[1].pts - w[0].pts).collect()
}

#[test]
fn x265_becomes_access_units_that_read_back_at_both_sizes() {
    let (track, units) = replay("ffmpeg-x265");
    let Codec::H265(params) = &track.codec else {
        panic!("{track:?}")
    };
    assert!(units.len() >= 45, "{} frames of 2 s at 25 fps", units.len());
    // x265 writes B-frames: in presentation order the frames are 1/25 s apart.
    let mut pts: Vec<i64> = units.iter().map(|u| u.pts).collect();
    pts.sort_unstable();
    assert!(pts.windows(2).all(|w| w[1] - w[0] == 3600), "{pts:?}");
    // DTS from the picture order count: evenly spaced, never after PTS. (The very first
    // IDR's DTS assumes 30 fps, since no frame has been timed yet: this stream is 25.)
    assert!(units.iter().any(|u| u.dts < u.pts), "no reordered frame");
    assert!(units.iter().all(|u| u.dts <= u.pts));
    let dts_steps: Vec<i64> = units.windows(2).map(|w| w[1].dts - w[0].dts).collect();
    assert!(
        dts_steps[1..].iter().all(|s| *s == 3600),
        "DTS steps: {dts_steps:?}"
    );
    let keyframes: Vec<&Packet> = units.iter().filter(|u| u.keyframe).collect();
    assert!(units[0].keyframe && keyframes.len() >= 2, "keyint 25");
    for u in &units {
        let Some(Frame::Nals(nals)) = &u.frame else {
            panic!("no NALs")
        };
        if u.keyframe {
            let sets: Vec<&Bytes> = nals.iter().take(3).collect();
            let want: Vec<&Bytes> = [&params.vps, &params.sps, &params.pps]
                .into_iter()
                .flatten()
                .collect();
            assert_eq!(sets, want, "parameter sets ahead of the IRAP picture");
        }
        for (format, max) in [(RtpFormat::Rtsp, 1460), (RtpFormat::WebRtc, 1188)] {
            let payloads = u.rtp(format);
            assert!(payloads.iter().all(|p| p.payload.len() <= max));
            assert!(payloads.last().is_some_and(|p| p.marker));
            let mut d = Depacketizer::<h265::H265>::new();
            let mut back = Vec::new();
            for p in payloads {
                d.push(&p.payload, &mut back).expect("reads back");
            }
            assert_eq!(&back, nals);
        }
    }
    assert!(
        units.iter().any(|u| u.rtp(RtpFormat::WebRtc).len() > 1),
        "some frames are fragmented (FU)"
    );
    assert_eq!(h265::H265::NAME, "H.265");
}

#[test]
fn aac_generic_and_latm_become_one_unit_per_access_unit() {
    for name in ["ffmpeg-aac-generic", "ffmpeg-aac-latm"] {
        let (track, units) = replay(name);
        let Codec::Mpeg4Audio(audio) = &track.codec else {
            panic!("{track:?}")
        };
        // 1 s at 48 kHz in 1024-sample frames.
        assert!(units.len() >= 44, "{name}: {}", units.len());
        assert!(
            steps(&units).iter().all(|s| *s == 1024),
            "{name}: {:?}",
            steps(&units)
        );
        for u in &units {
            let Some(Frame::Whole(au)) = &u.frame else {
                panic!("{name}: no AU")
            };
            let payloads = u.rtp(RtpFormat::Rtsp);
            let mut back = Vec::new();
            match &audio.packing {
                Packing::Generic(h) => {
                    let mut d = generic::Depacketizer::new(*h);
                    for p in payloads {
                        d.push(&p.payload, p.marker, &mut back).expect("generic");
                    }
                }
                Packing::Latm { sub_frames, .. } => {
                    let mut d = latm::Depacketizer::new(*sub_frames);
                    for p in payloads {
                        d.push(&p.payload, p.marker, &mut back).expect("latm");
                    }
                }
            }
            assert_eq!(back, vec![au.clone()], "{name}");
        }
    }
}

#[test]
fn l16_and_mp3_pass_through_packet_by_packet() {
    for (name, codec) in [("ffmpeg-l16", "LPCM"), ("ffmpeg-mp3", "MPEG-1/2 Audio")] {
        let (track, units) = replay(name);
        assert_eq!(track.api_name(), codec);
        let sent = packets(name);
        assert_eq!(units.len(), sent.len(), "{name}");
        for (u, p) in units.iter().zip(&sent) {
            // Untouched: the payload after the 12-byte RTP header.
            assert_eq!(u.rtp(RtpFormat::Rtsp)[0].payload, p.slice(12..), "{name}");
        }
    }
}

/// x264 High with 3 B-frames and a B-pyramid: DTS read from the picture order count is
/// evenly spaced at the frame rate, strictly increasing and never after PTS, as HLS and MP4
/// need it.
#[test]
fn x264_b_frames_get_decoding_times_from_picture_order() {
    let (_, units) = replay("ffmpeg-x264-bframes");
    assert!(units.len() >= 55, "{} frames of 2 s at 30 fps", units.len());
    let mut pts: Vec<i64> = units.iter().map(|u| u.pts).collect();
    pts.sort_unstable();
    assert!(pts.windows(2).all(|w| w[1] - w[0] == 3000), "{pts:?}");
    assert!(units.iter().any(|u| u.dts < u.pts), "no reordered frame");
    assert!(units.iter().all(|u| u.dts <= u.pts));
    let dts: Vec<i64> = units.iter().map(|u| u.dts).collect();
    assert!(
        dts.windows(2).all(|w| w[1] - w[0] == 3000),
        "DTS steps: {:?}",
        dts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    );
}

/// Audio has no reordering: DTS is PTS.
#[test]
fn audio_keeps_dts_at_pts() {
    for name in ["ffmpeg-aac-generic", "ffmpeg-l16"] {
        let (_, units) = replay(name);
        assert!(units.iter().all(|u| u.dts == u.pts), "{name}");
    }
}
