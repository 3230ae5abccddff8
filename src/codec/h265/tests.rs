use super::*;
use crate::codec::nal::{AccessUnit, NalError, OutPacket};
use crate::codec::sdp::parse_media;

const FFMPEG_SDP: &str = include_str!("../../../tests/data/captures/ffmpeg-x265.sdp");

fn nal(kind: u8, len: usize) -> Bytes {
    let mut n = vec![kind << 1, 1];
    n.extend((0..len.saturating_sub(2)).map(|i| (i % 251) as u8 + 1));
    Bytes::from(n)
}

fn ffmpeg_params() -> ParamSets {
    let medias = parse_media(FFMPEG_SDP.as_bytes()).expect("sdp");
    ParamSets::from_fmtp(|k| medias[0].fmtp_param(k)).expect("params")
}

#[test]
fn ffmpeg_sprops_read_and_say_main_profile() {
    let p = ffmpeg_params();
    assert_eq!(
        p.vps.as_ref().map(|n| nal_type_of(n[0])),
        Some(nal_type::VPS)
    );
    assert_eq!(
        p.sps.as_ref().map(|n| nal_type_of(n[0])),
        Some(nal_type::SPS)
    );
    assert_eq!(
        p.pps.as_ref().map(|n| nal_type_of(n[0])),
        Some(nal_type::PPS)
    );
    // x265 at 640x360: Main profile, main tier, level 2.1 (level_idc 63).
    assert_eq!(
        p.profile_tier_level(),
        Some(params::ProfileTierLevel {
            profile_id: 1,
            tier_flag: 0,
            level_id: 63
        })
    );
    let fmtp = p.to_fmtp();
    let again = ParamSets::from_fmtp(|k| {
        fmtp.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    })
    .expect("round trip");
    assert_eq!(again, p);
}

#[test]
fn broken_sprops_are_errors_that_name_the_set() {
    for (key, value) in [
        ("sprop-vps", "%%%"),
        ("sprop-sps", "RAHBcoYMRiQ="),
        ("sprop-pps", "QA"),
    ] {
        let err = ParamSets::from_fmtp(|k| (k == key).then_some(value)).expect_err(key);
        assert!(matches!(err, NalError::BadSprop(_)), "{err:?}");
        assert!(err.to_string().contains(key), "{err}");
    }
    assert_eq!(ParamSets::from_fmtp(|_| None), Ok(ParamSets::default()));
}

#[test]
fn depacketizer_reads_single_aggregate_and_fragments() {
    let mut d = nal::Depacketizer::<H265>::new();
    let mut out = Vec::new();
    let vps = nal(nal_type::VPS, 5);
    let sps = nal(nal_type::SPS, 7);
    // AP: header (type 48), then size + NAL entries.
    let mut ap = vec![nal_type::AP << 1, 1];
    for n in [&vps, &sps] {
        ap.extend_from_slice(&(n.len() as u16).to_be_bytes());
        ap.extend_from_slice(n);
    }
    d.push(&Bytes::from(ap), &mut out).expect("AP");
    assert_eq!(out, vec![vps.clone(), sps.clone()]);
    // FU of an IDR (type 19): start, middle, end.
    let idr = nal(19, 20);
    let fu = |flags: u8, data: &[u8]| {
        let mut p = vec![nal_type::FU << 1, 1, flags | 19];
        p.extend_from_slice(data);
        Bytes::from(p)
    };
    out.clear();
    d.push(&fu(0x80, &idr[2..8]), &mut out).expect("start");
    d.push(&fu(0, &idr[8..15]), &mut out).expect("middle");
    assert!(out.is_empty() && d.has_partial());
    d.push(&fu(0x40, &idr[15..]), &mut out).expect("end");
    assert_eq!(out, vec![idr]);
}

#[test]
fn depacketizer_refuses_broken_packets() {
    let mut d = nal::Depacketizer::<H265>::new();
    let mut out = Vec::new();
    let mut push = |b: &[u8]| d.push(&Bytes::copy_from_slice(b), &mut out);
    assert_eq!(push(&[]), Err(NalError::EmptyPayload));
    assert_eq!(
        push(&[0x02]),
        Err(NalError::HeaderTooShort { len: 1, need: 2 })
    );
    assert_eq!(push(&[nal_type::FU << 1, 1]), Err(NalError::FuTooShort));
    assert_eq!(
        push(&[nal_type::FU << 1, 1, 0x13, 9]),
        Err(NalError::FuWithoutStart)
    );
    assert_eq!(
        push(&[nal_type::AP << 1, 1, 0, 9, 2, 1]),
        Err(NalError::AggregateLengthPastEnd {
            at: 2,
            len: 9,
            remaining: 2
        })
    );
    let err = push(&[nal_type::PACI << 1, 1, 0]).expect_err("PACI");
    assert!(err.to_string().contains("H.265") && err.to_string().contains("PACI"));
    assert!(out.is_empty());
}

#[test]
fn packetizer_output_reads_back_at_every_size() {
    let nals = vec![
        nal(nal_type::VPS, 24),
        nal(nal_type::SPS, 40),
        nal(nal_type::PPS, 8),
        nal(19, 5000),
        nal(1, 3),
    ];
    for max in [4, 5, 100, 1188, 1460, 9000] {
        let mut packets = Vec::new();
        packetize_au(&nals, max, &mut packets);
        assert!(packets.iter().all(|p| p.payload.len() <= max), "{max}");
        assert!(packets.last().is_some_and(|p| p.marker));
        let mut d = nal::Depacketizer::<H265>::new();
        let mut back = Vec::new();
        for p in &packets {
            d.push(&p.payload, &mut back).expect("reads back");
        }
        assert_eq!(back, nals, "max payload {max}");
    }
}

#[test]
fn aggregate_header_takes_lowest_layer_and_tid() {
    let a = Bytes::from_static(&[nal_type::VPS << 1, 0x03, 1]);
    let b = Bytes::from_static(&[nal_type::SPS << 1 | 1, 0x02, 1]);
    let mut out = BytesMut::new();
    H265::aggregate_header(&[a, b], &mut out);
    assert_eq!(nal_type_of(out[0]), nal_type::AP);
    assert_eq!(layer_and_tid(&out), (0, 2));
}

#[test]
fn reframer_puts_parameter_sets_ahead_of_keyframes() {
    let params = ffmpeg_params();
    let mut r = Reframer::new(params.clone());
    let mut aus: Vec<AccessUnit> = Vec::new();
    let idr = nal(19, 3000);
    let mut packets: Vec<OutPacket> = Vec::new();
    // The camera sends the IDR alone, in fragments, after an AUD.
    let au = AccessUnit {
        timestamp: 9000,
        keyframe: true,
        nals: vec![nal(nal_type::AUD, 3), idr.clone()],
    };
    nal::packetize_access_unit::<H265>(&au, 1400, &mut packets);
    let trail = AccessUnit {
        timestamp: 12600,
        keyframe: false,
        nals: vec![nal(1, 900)],
    };
    nal::packetize_access_unit::<H265>(&trail, 1400, &mut packets);
    for (seq, p) in packets.iter().enumerate() {
        r.push_rtp(seq as u16, p.timestamp, p.marker, &p.payload, &mut aus)
            .expect("ok");
    }
    assert_eq!(aus.len(), 2);
    assert!(aus[0].keyframe && !aus[1].keyframe);
    let want: Vec<Bytes> = params.sets().cloned().chain([idr]).collect();
    assert_eq!(aus[0].nals, want, "VPS, SPS, PPS, IDR; no AUD");
    assert_eq!(aus[1].nals.len(), 1);
}

#[test]
fn in_band_parameter_sets_are_learned() {
    let mut r = Reframer::new(ParamSets::default());
    let mut aus = Vec::new();
    let sets = [
        nal(nal_type::VPS, 10),
        nal(nal_type::SPS, 12),
        nal(nal_type::PPS, 6),
    ];
    for (i, n) in sets.iter().enumerate() {
        r.push_rtp(i as u16, 0, false, n, &mut aus).expect("ok");
    }
    r.push_rtp(3, 0, true, &nal(nal_type::CRA, 50), &mut aus)
        .expect("ok");
    assert!(r.take_params_changed());
    assert_eq!(r.params().vps.as_ref(), Some(&sets[0]));
    assert_eq!(r.params().pps.as_ref(), Some(&sets[2]));
    assert!(aus[0].keyframe);
    assert_eq!(aus[0].nals.len(), 4);
}

#[test]
fn x265_sps_and_pps_give_what_the_dts_extractor_needs() {
    let p = ffmpeg_params();
    let sps = Sps::parse(p.sps.as_deref().expect("sps")).expect("SPS parses");
    assert!(
        sps.max_num_reorder_pics > 0,
        "x265 writes B-frames: {sps:?}"
    );
    assert!(!sps.separate_colour_plane);
    assert!(Pps::parse(p.pps.as_deref().expect("pps")).is_some());
    // Truncated sets give nothing rather than a wrong answer.
    let sps_bytes = p.sps.as_deref().expect("sps");
    assert_eq!(Sps::parse(&sps_bytes[..8]), None);
    assert_eq!(Pps::parse(&[0x44]), None);
}
