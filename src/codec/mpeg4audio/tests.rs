use bytes::Bytes;

use super::generic::AuHeaders;
use super::*;
use crate::codec::frame::RtpPayload;
use crate::codec::sdp::parse_media;

fn media(sdp: &str) -> MediaDesc {
    parse_media(sdp.as_bytes()).expect("sdp").remove(0)
}

const GENERIC: &str = include_str!("../../../tests/data/captures/ffmpeg-aac-generic.sdp");
const LATM: &str = include_str!("../../../tests/data/captures/ffmpeg-aac-latm.sdp");

fn with_fmtp(rtpmap: &str, fmtp: &str) -> MediaDesc {
    media(&format!(
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\n\
         a=rtpmap:97 {rtpmap}\r\na=fmtp:97 {fmtp}\r\n"
    ))
}

#[test]
fn ffmpeg_generic_and_latm_configs_read_as_aac_lc_48k_stereo() {
    for sdp in [GENERIC, LATM] {
        let a = Mpeg4Audio::from_sdp(&media(sdp)).expect(sdp);
        assert_eq!(
            (
                a.config.object_type,
                a.config.sample_rate,
                a.config.channels
            ),
            (2, 48_000, 2)
        );
        assert_eq!(a.ticks_per_au(48_000), 1024);
        // What a DESCRIBE answer says reads back the same.
        let fmtp: Vec<String> = a.fmtp().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let back = with_fmtp(&format!("{}/48000/2", a.encoding()), &fmtp.join(";"));
        assert_eq!(Mpeg4Audio::from_sdp(&back), Ok(a));
    }
}

/// Found by the codec_params fuzz target: a LATM fmtp without profile-level-id described
/// back with RFC 6416's default read back as a different track.
#[test]
fn latm_without_profile_level_id_describes_back_to_itself() {
    let m = with_fmtp("MP4A-LATM/44100/2", "cpresent=0;config=400023203fc0");
    let a = Mpeg4Audio::from_sdp(&m).expect("latm");
    let fmtp: Vec<String> = a.fmtp().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let back = with_fmtp("MP4A-LATM/44100/2", &fmtp.join(";"));
    assert_eq!(Mpeg4Audio::from_sdp(&back), Ok(a));
}

#[test]
fn config_edge_cases() {
    // 16 kHz mono (ffmpeg), HE-AAC (SBR: object 5 over AAC LC at 24 kHz, 48 kHz out), 960.
    let c = AudioConfig::parse(Bytes::from_static(&[0x14, 0x08])).expect("16k");
    assert_eq!(
        (c.sample_rate, c.channels, c.frame_samples),
        (16_000, 1, 1024)
    );
    let he = AudioConfig::parse(Bytes::from_static(&[0x2B, 0x11, 0x88, 0x00])).expect("HE");
    assert_eq!(
        (he.object_type, he.sample_rate, he.output_rate),
        (2, 24_000, 48_000)
    );
    assert_eq!(he.ticks_per_frame(48_000), 2048);
    let short = AudioConfig::parse(Bytes::from_static(&[0x12, 0x14])).expect("960");
    assert_eq!(short.frame_samples, 960);
    for broken in [&[][..], &[0x12], &[0x17, 0x80]] {
        assert!(
            AudioConfig::parse(Bytes::copy_from_slice(broken)).is_err(),
            "{broken:?}"
        );
    }
}

#[test]
fn bad_fmtp_is_refused_with_the_reason() {
    for (rtpmap, fmtp, needle) in [
        (
            "MPEG4-GENERIC/48000/2",
            "mode=AAC-hbr;config=1190",
            "sizelength",
        ),
        ("MPEG4-GENERIC/48000/2", "sizelength=13;config=zz", "config"),
        ("MPEG4-GENERIC/48000/2", "sizelength=13", "config"),
        (
            "MPEG4-GENERIC/48000/2",
            "sizelength=40;config=1190",
            "sizelength",
        ),
        (
            "MPEG4-GENERIC/48000/2",
            "sizelength=13;ctsdeltalength=16;config=1190",
            "ctsdeltalength",
        ),
        ("MP4A-LATM/48000/2", "config=400023203fc0", "cpresent"),
        (
            "MP4A-LATM/48000/2",
            "cpresent=0;config=c00023203fc0",
            "audioMuxVersion",
        ),
        (
            "MP4A-LATM/48000/2",
            "cpresent=0;config=4000",
            "StreamMuxConfig",
        ),
    ] {
        let err = Mpeg4Audio::from_sdp(&with_fmtp(rtpmap, fmtp)).expect_err(fmtp);
        assert!(err.to_string().contains(needle), "{fmtp}: {err}");
    }
}

const HBR: AuHeaders = AuHeaders {
    size_length: 13,
    index_length: 3,
    index_delta_length: 3,
};

fn generic_packet(sizes: &[usize], data: &[u8]) -> Bytes {
    let mut p = vec![0, (sizes.len() * 16) as u8];
    for s in sizes {
        p.extend_from_slice(&((*s as u16) << 3).to_be_bytes());
    }
    p.extend_from_slice(data);
    Bytes::from(p)
}

#[test]
fn generic_reads_several_aus_and_fragments() {
    let mut d = generic::Depacketizer::new(HBR);
    let mut out = Vec::new();
    d.push(&generic_packet(&[3, 2], b"abcde"), true, &mut out)
        .expect("two AUs");
    assert_eq!(
        out,
        vec![Bytes::from_static(b"abc"), Bytes::from_static(b"de")]
    );
    out.clear();
    d.push(&generic_packet(&[10], b"01234"), false, &mut out)
        .expect("first part");
    assert!(out.is_empty());
    d.push(&generic_packet(&[10], b"56789"), true, &mut out)
        .expect("last part");
    assert_eq!(out, vec![Bytes::from_static(b"0123456789")]);
}

#[test]
fn generic_refuses_broken_packets() {
    let mut d = generic::Depacketizer::new(HBR);
    let mut out = Vec::new();
    let mut push = |p: Bytes, marker| d.push(&p, marker, &mut out);
    assert!(matches!(
        push(Bytes::new(), true),
        Err(Mpeg4AudioError::ShortPayload { .. })
    ));
    assert!(matches!(
        push(Bytes::from_static(&[0, 64, 0]), true),
        Err(Mpeg4AudioError::ShortPayload { .. })
    ));
    assert!(matches!(
        push(generic_packet(&[3, 9], b"abcde"), true),
        Err(Mpeg4AudioError::SizesPastEnd { sizes: 12, data: 5 })
    ));
    // A fragment that overshoots its announced size.
    push(generic_packet(&[6], b"0123"), false).expect("start");
    assert!(matches!(
        push(generic_packet(&[6], b"4567"), true),
        Err(Mpeg4AudioError::FragmentMismatch { have: 8, want: 6 })
    ));
    assert!(out.is_empty());
}

fn read_back(
    packets: &[RtpPayload],
    mut push: impl FnMut(&Bytes, bool) -> Vec<Bytes>,
) -> Vec<Bytes> {
    packets
        .iter()
        .flat_map(|p| push(&p.payload, p.marker))
        .collect()
}

#[test]
fn packetizers_read_back_at_every_size() {
    let au = Bytes::from((0..700u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    for max in [1, 10, 300, 1188, 1460] {
        let mut packets = Vec::new();
        generic::packetize(&au, HBR, max, &mut packets);
        assert!(packets.iter().all(|p| p.payload.len() <= max.max(5)));
        let mut d = generic::Depacketizer::new(HBR);
        let back = read_back(&packets, |p, m| {
            let mut out = Vec::new();
            d.push(p, m, &mut out).expect("generic");
            out
        });
        assert_eq!(back, vec![au.clone()], "generic at {max}");

        let mut packets = Vec::new();
        latm::packetize(&au, max, &mut packets);
        assert!(packets.iter().all(|p| p.payload.len() <= max));
        let mut d = latm::Depacketizer::new(0);
        let back = read_back(&packets, |p, m| {
            let mut out = Vec::new();
            d.push(p, m, &mut out).expect("latm");
            out
        });
        assert_eq!(back, vec![au.clone()], "latm at {max}");
    }
}

#[test]
fn latm_refuses_truncated_elements() {
    let mut d = latm::Depacketizer::new(0);
    let mut out = Vec::new();
    for broken in [&[][..], &[255, 255], &[10, 1, 2]] {
        assert!(d
            .push(&Bytes::copy_from_slice(broken), true, &mut out)
            .is_err());
    }
    assert!(out.is_empty());
}
