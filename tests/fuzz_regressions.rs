//! Inputs found by the fuzz targets under `fuzz/` (see fuzz/README.md), replayed through the
//! same public API. Each test failed before the fix it names and passes after.

use bytes::Bytes;
use hubcast::codec::h264::{Depacketizer, OutPacket, Reframer};
use hubcast::servers::webrtc::sdp::{choose_h264, h264_profile, parse_offer};

/// Every payload the reframer emits must be a valid H.264 RTP payload: a reader's
/// depacketizer must take it without error.
fn assert_depacketizable(out: &[OutPacket]) {
    let mut depack = Depacketizer::new();
    let mut nals = Vec::new();
    for p in out {
        if let Err(e) = depack.push(&p.payload, &mut nals) {
            panic!("reframer emitted {:02x?}: {e}", &p.payload[..]);
        }
    }
}

/// fuzz target `h264`: a STAP-A whose entry has NAL type 0 was forwarded as a single-NAL
/// packet of type 0 (undefined in RFC 6184), which readers refuse. Fixed in
/// `Reframer::add_nal` (src/codec/h264/reframe.rs): NAL types 0 and 24..=31 are dropped.
#[test]
fn reframer_drops_nal_type_0_from_stap_a() {
    let mut r = Reframer::new(Default::default());
    let mut out = Vec::new();
    // STAP-A: [type 0 NAL 00 aa] [P slice 41 9a 02].
    let payload = Bytes::from_static(&[0x78, 0x00, 0x02, 0x00, 0xaa, 0x00, 0x03, 0x41, 0x9a, 0x02]);
    r.push_rtp_as_packets(1, 3000, true, &payload, &mut out)
        .unwrap();
    assert_depacketizable(&out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(&out[0].payload[..], &[0x41, 0x9a, 0x02]);
}

/// Same fix: an FU-A whose FU header names an RTP packet type (24 = STAP-A, 28 = FU-A, ...)
/// reassembled into a "NAL" that went out as a single packet starting with that header.
#[test]
fn reframer_drops_fu_a_carrying_rtp_packet_type() {
    let slice = Bytes::from_static(&[0x41, 0x9a, 0x02]);
    for inner in [0u8, 24, 28, 29, 31] {
        let mut r = Reframer::new(Default::default());
        let mut out = Vec::new();
        // A P slice, then in the same access unit an FU-A (start and end) of type `inner`.
        r.push_rtp_as_packets(7, 3000, false, &slice, &mut out)
            .unwrap();
        let payload = Bytes::from(vec![0x7c, 0xc0 | inner, 0x01, 0x02]);
        r.push_rtp_as_packets(8, 3000, true, &payload, &mut out)
            .unwrap();
        assert_depacketizable(&out);
        assert_eq!(out.len(), 1, "type {inner}: {out:?}");
        assert_eq!(out[0].payload, slice, "type {inner}");
    }
}

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// fuzz target `sdp_offer`: with a source profile-level-id that does not parse, the codec
/// was ranked as for an unknown stream, but the unparsable plid was still copied into the
/// answer. Fixed in `choose_h264` (src/servers/webrtc/sdp.rs).
#[test]
fn choose_h264_never_answers_with_an_unparsable_source_plid() {
    let medias = parse_offer(OFFER).unwrap().medias;
    for source in ["zz", "", "42e01", "42e01f00", "4\u{e9}01f"] {
        let (codec, plid) = choose_h264(&medias[0], Some(source)).expect("baseline offered");
        assert_eq!(codec.payload_type, 102);
        assert!(h264_profile(&plid).is_some(), "{source:?} -> {plid:?}");
        assert_eq!(plid, "42e01f", "{source:?}");
    }
}

/// fuzz target `peer_in`: under AES_CM_128_HMAC_SHA1_80, an SRTCP packet with the E flag
/// clear was returned by `webrtc-srtp` without its tag being checked, so a forged RTCP
/// packet was accepted. Fixed in `Inbound::unprotect_rtcp` (src/servers/webrtc/transport/inbound.rs):
/// unencrypted SRTCP is refused under that profile.
#[test]
fn forged_unencrypted_srtcp_is_refused() {
    use hubcast::config::SrtpProfile;
    use hubcast::servers::webrtc::transport::inbound::Inbound;
    let finding = include_bytes!("../fuzz/findings/peer_in-forged-srtcp-accepted.bin");
    // Byte 0 picks the profile in the target (0xfe % 3 == 2: AES-CM); datagrams are split
    // at 0xff.
    let mut inbound =
        Inbound::new(&[3; 16], &[5; 14], SrtpProfile::AesCm128HmacSha1_80).expect("inbound");
    for d in finding[1..].split(|&b| b == 0xff) {
        assert!(
            inbound.unprotect_rtcp(d).is_err(),
            "forged SRTCP {d:02x?} accepted"
        );
    }
}

/// fuzz target `peer_in`: an SRTP packet whose two-byte header extension element claims
/// more bytes than the packet holds made the `rtp` crate panic inside `webrtc-srtp`'s
/// `decrypt_rtp`, before the tag was checked: a session's task died on one datagram. Fixed
/// by `media::rtp::check_extensions`, run in `Inbound::unprotect_rtp` before decryption.
#[test]
fn srtp_with_an_extension_past_the_end_is_an_error() {
    use hubcast::config::SrtpProfile;
    use hubcast::servers::webrtc::transport::inbound::Inbound;
    let finding = include_bytes!("../fuzz/findings/peer_in-rtp-extension-past-end.bin");
    let mut inbound =
        Inbound::new(&[3; 16], &[5; 14], SrtpProfile::AesCm128HmacSha1_80).expect("inbound");
    for d in finding[1..].split(|&b| b == 0xff) {
        assert!(inbound.unprotect_rtp(d).is_err());
    }
}

/// fuzz target `peer_in`: a generic NACK whose length leaves no room for its FCI made the
/// `rtcp` crate's unmarshal panic (`get_u32` past the end) on what an authenticated peer's
/// SRTCP decrypted to. Fixed by reading inbound RTCP with our own length-checked walker,
/// `media::rtcp::walk`.
#[test]
fn rtcp_with_a_short_nack_is_walked_without_panic() {
    use hubcast::media::rtcp;
    let finding = include_bytes!("../fuzz/findings/peer_in-rtcp-nack-short-fci.bin");
    let mut refused = 0;
    for d in finding[1..].split(|&b| b == 0xff) {
        if rtcp::walk(d, |_| {}).is_err() {
            refused += 1;
        }
        let _ = (rtcp::wants_keyframe(d), rtcp::sender_report_ntp(d, 1));
    }
    assert!(refused > 0, "the malformed packet is an error");
}

/// fuzz target `rtsp_message`: an ANNOUNCE with `opus/48000/1` made a mono track, which our
/// DESCRIBE wrote as `OPUS/48000/2` with `sprop-stereo=0` (as RFC 7587 wants) and which
/// read back as stereo. Fixed in `codec::track_from_sdp`: `sprop-stereo=0` means mono too.
#[test]
fn a_mono_opus_track_describes_back_to_mono() {
    use hubcast::codec::{sdp::parse_media, sdp_for_track, track_from_sdp, Codec};
    // The ANNOUNCE body of fuzz/findings/rtsp_message-opus-mono-describe.bin, cut to its
    // audio media.
    let body = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 opus/48000/1\r\n";
    let medias = parse_media(body.as_bytes()).expect("SDP");
    let audio = medias
        .iter()
        .find_map(|m| {
            track_from_sdp(m)
                .ok()
                .map(|(t, _)| t)
                .filter(|t| !t.is_video())
        })
        .expect("an Opus track");
    assert_eq!(audio.codec, Codec::Opus { channels: 1 });
    let again = track_from_sdp(&sdp_for_track(&audio, 97)).map(|(t, _)| t);
    assert_eq!(again, Ok(audio));
}

/// fuzz target `rtp_ingest` (fuzz/findings/rtp_ingest/vp8_oversize_packet_to_webrtc): a
/// VP8 packet larger than WebRTC's payload limit (an RTSP publisher's 1460-byte packets)
/// went to WebRTC readers as it was. Fixed in `codec::vp8::split`: such a packet is cut to
/// size for them, once, with the payload descriptor on each part.
#[test]
fn oversize_vp8_packets_are_cut_to_webrtc_size() {
    use hubcast::codec::Codec;
    use hubcast::path::{Hub, RtpFormat, Track};
    use hubcast::stream::ingest::{H264Mode, Ingest};

    let hub = Hub::new("vp8", vec![Track::video(Codec::Vp8)], 16);
    let mut reader = hub.add_reader().expect("open");
    let mut ingest = Ingest::new(std::sync::Arc::clone(&hub), &[Some(0)], H264Mode::Reframe);
    let mut pkt = vec![0x80, 0x80 | 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
    pkt.extend_from_slice(&[0x10, 0x10]); // S=1 PID=0, key frame tag
    pkt.extend(std::iter::repeat_n(0x55, 1458));
    ingest.push_rtp(0, &Bytes::from(pkt)).expect("valid VP8");
    let unit = reader.try_recv().expect("a unit");
    assert!(unit.starts_keyframe());
    let web = unit.rtp(RtpFormat::WebRtc);
    assert_eq!(web.len(), 2);
    assert!(web
        .iter()
        .all(|p| p.payload.len() <= RtpFormat::WebRtc.max_payload()));
    assert_eq!((web[0].marker, web[1].marker), (false, true));
    assert_eq!(
        (web[0].payload[0], web[1].payload[0]),
        (0x10, 0x00),
        "S only on the first"
    );
    // RTSP readers take the packet as it came.
    assert_eq!(unit.rtp(RtpFormat::Rtsp)[0].payload.len(), 1460);
}

/// fuzz target `rtp_ingest` (fuzz/findings/rtp_ingest/empty_passthrough_payload): an empty
/// VP8/VP9/AV1 payload in the middle of a frame went to readers as an empty packet. Fixed
/// in `stream::passthrough`: every packet's payload is checked, not only a frame's first.
#[test]
fn empty_passthrough_payloads_are_refused() {
    use hubcast::codec::Codec;
    use hubcast::path::{Hub, Track};
    use hubcast::stream::ingest::{H264Mode, Ingest};

    for codec in [Codec::Vp8, Codec::Vp9, Codec::Av1] {
        let hub = Hub::new("v", vec![Track::video(codec.clone())], 16);
        let mut reader = hub.add_reader().expect("open");
        let mut ingest = Ingest::new(std::sync::Arc::clone(&hub), &[Some(0)], H264Mode::Reframe);
        let header = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        assert!(
            ingest
                .push_rtp(0, &Bytes::copy_from_slice(&header))
                .is_err(),
            "{codec:?}"
        );
        assert!(
            reader.try_recv().is_none(),
            "{codec:?}: nothing reached the reader"
        );
        assert_eq!(
            hub.stats
                .invalid_in
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
