use super::params::{has_chroma_fields, nal_to_rbsp, SPROP_BASE64};
use super::*;
use base64::Engine as _;

/// Packetizes NALs as one access unit with the given marks, as a reader receives them.
fn packetize_au(
    nals: &[Bytes],
    timestamp: u32,
    keyframe: bool,
    max_payload: usize,
    out: &mut Vec<OutPacket>,
) {
    let au = AccessUnit {
        timestamp,
        keyframe,
        nals: nals.to_vec(),
    };
    packetize_access_unit(&au, max_payload, out);
}

#[test]
fn parameter_sets_alone_are_not_a_frame() {
    // GStreamer: SPS and PPS stamped with the previous frame's time, then the IDR.
    let mut r = Reframer::new(ParamSets::default());
    let mut out = Vec::new();
    let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xda]);
    let pps = Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]);
    let p_frame = Bytes::from_static(&[0x41, 0x9a, 0x01]);
    let idr = Bytes::from_static(&[0x65, 0x88, 0x84]);
    r.push_rtp_as_packets(1, 3000, true, &p_frame, &mut out)
        .expect("ok");
    r.push_rtp_as_packets(2, 3000, false, &sps, &mut out)
        .expect("ok");
    r.push_rtp_as_packets(3, 3000, true, &pps, &mut out)
        .expect("ok");
    r.push_rtp_as_packets(4, 6000, true, &idr, &mut out)
        .expect("ok");
    let stamps: Vec<u32> = out.iter().map(|p| p.timestamp).collect();
    assert_eq!(
        stamps.iter().filter(|t| **t == 3000).count(),
        1,
        "{stamps:?}"
    );
    let idr_au: Vec<&OutPacket> = out.iter().filter(|p| p.timestamp == 6000).collect();
    assert!(idr_au[0].keyframe && idr_au[0].au_start);
    // The IDR's AU carries the parameter sets first (a STAP-A here).
    assert_eq!(nal_type_of(idr_au[0].payload[0]), nal_type::STAP_A);
}

/// xorshift64: deterministic test data without extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn nal(rng: &mut Rng, header: u8, len: usize) -> Bytes {
    let mut data = rng.bytes(len);
    data[0] = header;
    Bytes::from(data)
}

fn test_params() -> ParamSets {
    ParamSets {
        sps: Some(Bytes::from(baseline_720p_sps())),
        pps: Some(Bytes::from_static(&[0x68, 0xCE, 0x3C, 0x80])),
    }
}

/// SPS, PPS, SEI and one 1280x720 IDR slice of `idr_len` bytes.
fn idr_au(rng: &mut Rng, idr_len: usize) -> Vec<Bytes> {
    let params = test_params();
    vec![
        params.sps.clone().unwrap(),
        params.pps.clone().unwrap(),
        nal(rng, 0x06, 30),
        nal(rng, 0x65, idr_len),
    ]
}

fn depacketize_all(packets: &[OutPacket]) -> Vec<Bytes> {
    let mut depacketizer = Depacketizer::new();
    let mut nals = Vec::new();
    for packet in packets {
        depacketizer.push(&packet.payload, &mut nals).unwrap();
    }
    assert!(!depacketizer.has_partial());
    nals
}

fn assert_well_formed_au(packets: &[OutPacket]) {
    assert!(!packets.is_empty());
    for (i, packet) in packets.iter().enumerate() {
        assert!(
            packet.payload.len() <= MAX_PAYLOAD,
            "{}",
            packet.payload.len()
        );
        assert_eq!(packet.au_start, i == 0, "au_start on packet {i}");
        assert_eq!(
            packet.marker,
            i == packets.len() - 1,
            "marker on packet {i}"
        );
        assert_eq!(packet.timestamp, packets[0].timestamp);
    }
}

/// Splits a run of output packets into access units at the marker bit.
fn split_aus(packets: &[OutPacket]) -> Vec<&[OutPacket]> {
    packets
        .split_inclusive(|p| p.marker)
        .filter(|au| !au.is_empty())
        .collect()
}

#[test]
fn idr_round_trip() {
    let mut rng = Rng(1);
    let nals = idr_au(&mut rng, 100_000);
    let mut out = Vec::new();
    packetize_au(&nals, 9000, true, MAX_PAYLOAD, &mut out);
    assert_well_formed_au(&out);
    assert!(out.iter().all(|p| p.keyframe && p.timestamp == 9000));
    // SPS, PPS and SEI share the first packet.
    assert_eq!(nal_type_of(out[0].payload[0]), nal_type::STAP_A);
    assert_eq!(out.len(), 1 + (100_000 - 1usize).div_ceil(MAX_PAYLOAD - 2));
    assert_eq!(depacketize_all(&out), nals);
}

#[test]
fn p_frame_round_trip() {
    let mut rng = Rng(2);
    for nals in [
        vec![nal(&mut rng, 0x41, 8_000)],
        vec![
            nal(&mut rng, 0x41, 2_500),
            nal(&mut rng, 0x41, 3_000),
            nal(&mut rng, 0x41, 2_700),
        ],
        vec![nal(&mut rng, 0x06, 12), nal(&mut rng, 0x41, 5_000)],
    ] {
        let mut out = Vec::new();
        packetize_au(&nals, 1234, false, MAX_PAYLOAD, &mut out);
        assert_well_formed_au(&out);
        assert!(out.iter().all(|p| !p.keyframe));
        assert_eq!(depacketize_all(&out), nals);
    }
}

#[test]
fn random_aus_round_trip_at_any_max_payload() {
    let mut rng = Rng(3);
    for _ in 0..300 {
        let count = 1 + rng.below(8);
        let nals: Vec<Bytes> = (0..count)
            .map(|_| {
                let spread = if rng.below(3) == 0 { 5_000 } else { 300 };
                let len = 1 + rng.below(spread);
                nal(&mut rng, 0x41, len)
            })
            .collect();
        let max_payload = 3 + rng.below(1_500);
        let mut out = Vec::new();
        packetize_au(&nals, 7, false, max_payload, &mut out);
        assert!(out.iter().all(|p| p.payload.len() <= max_payload));
        assert!(out.iter().filter(|p| p.marker).count() == 1);
        assert!(out.last().unwrap().marker);
        assert_eq!(depacketize_all(&out), nals);
    }
}

#[test]
fn stap_a_aggregates_only_what_fits() {
    let mut rng = Rng(4);
    // 1 + 2 * (2 + 591) = 1187; 1 + 2 * (2 + 592) = 1189.
    for (len, expected_packets) in [(591, 1), (592, 2)] {
        let nals = vec![nal(&mut rng, 0x06, len), nal(&mut rng, 0x41, len)];
        let mut out = Vec::new();
        packetize_au(&nals, 0, false, MAX_PAYLOAD, &mut out);
        assert_eq!(out.len(), expected_packets, "len {len}");
        let first_type = nal_type_of(out[0].payload[0]);
        let expected_type = if expected_packets == 1 {
            nal_type::STAP_A
        } else {
            nal_type::SEI
        };
        assert_eq!(first_type, expected_type);
        assert_eq!(depacketize_all(&out), nals);
    }
    // Exactly max_payload: 1 + 2 + 1185.
    let nals = vec![nal(&mut rng, 0x06, 1), nal(&mut rng, 0x41, 1182)];
    let mut out = Vec::new();
    packetize_au(&nals, 0, false, MAX_PAYLOAD, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), MAX_PAYLOAD);
    // The STAP-A carries the highest NRI of its NALs.
    let nals = vec![
        Bytes::from_static(&[0x06, 1]),
        Bytes::from_static(&[0x67, 2]),
    ];
    let mut out = Vec::new();
    packetize_au(&nals, 0, false, MAX_PAYLOAD, &mut out);
    assert_eq!(out[0].payload[0], 0x60 | nal_type::STAP_A);
}

#[test]
fn single_small_nal_is_sent_as_is() {
    let nals = vec![Bytes::from_static(&[0x41, 1, 2, 3])];
    let mut out = Vec::new();
    packetize_au(&nals, 0, false, MAX_PAYLOAD, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, nals[0]);
    assert_eq!(out[0].payload.as_ptr(), nals[0].as_ptr(), "not zero-copy");
    assert!(out[0].marker && out[0].au_start);
}

#[test]
fn fu_a_fragments_fill_max_payload() {
    let mut rng = Rng(5);
    let exact = vec![nal(&mut rng, 0x65, MAX_PAYLOAD)];
    let mut out = Vec::new();
    packetize_au(&exact, 0, true, MAX_PAYLOAD, &mut out);
    assert_eq!(
        out.len(),
        1,
        "a NAL of exactly max_payload is not fragmented"
    );

    let big = vec![nal(&mut rng, 0x65, 5_000)];
    let mut out = Vec::new();
    packetize_au(&big, 0, true, MAX_PAYLOAD, &mut out);
    assert_eq!(out.len(), 5);
    for (i, packet) in out.iter().enumerate() {
        let last = i == out.len() - 1;
        assert_eq!(packet.payload[0], 0x60 | nal_type::FU_A);
        let start_end = (packet.payload[1] & 0x80 != 0, packet.payload[1] & 0x40 != 0);
        assert_eq!(start_end, (i == 0, last));
        assert_eq!(nal_type_of(packet.payload[1]), nal_type::IDR);
        if !last {
            assert_eq!(packet.payload.len(), MAX_PAYLOAD);
        }
    }
    assert_eq!(depacketize_all(&out), big);
}

#[test]
fn packetize_skips_empty_nals_and_empty_aus() {
    let mut out = Vec::new();
    packetize_au(&[], 0, false, MAX_PAYLOAD, &mut out);
    packetize_au(&[Bytes::new()], 0, false, MAX_PAYLOAD, &mut out);
    assert!(out.is_empty());
    let nals = [
        Bytes::from_static(&[0x06, 1]),
        Bytes::new(),
        Bytes::from_static(&[0x41, 2]),
    ];
    packetize_au(&nals, 0, false, MAX_PAYLOAD, &mut out);
    assert_eq!(out.len(), 2, "an empty NAL splits the aggregate");
    assert_eq!(depacketize_all(&out), [nals[0].clone(), nals[2].clone()]);
}

#[test]
fn packetize_appends_after_existing_packets() {
    let mut rng = Rng(6);
    let mut out = Vec::new();
    packetize_au(
        &[nal(&mut rng, 0x41, 3_000)],
        1,
        false,
        MAX_PAYLOAD,
        &mut out,
    );
    let first_au = out.len();
    packetize_au(
        &[nal(&mut rng, 0x41, 3_000)],
        2,
        false,
        MAX_PAYLOAD,
        &mut out,
    );
    assert_well_formed_au(&out[..first_au]);
    assert_well_formed_au(&out[first_au..]);
}

#[test]
fn depacketizer_single_nal_and_stap_a_are_zero_copy() {
    let mut depacketizer = Depacketizer::new();
    let mut nals = Vec::new();
    let single = Bytes::from_static(&[0x41, 9, 9, 9]);
    depacketizer.push(&single, &mut nals).unwrap();
    assert_eq!(nals[0].as_ptr(), single.as_ptr());

    let stap = Bytes::from_static(&[0x78, 0, 2, 0x67, 1, 0, 0, 0, 3, 0x68, 2, 3]);
    nals.clear();
    depacketizer.push(&stap, &mut nals).unwrap();
    assert_eq!(nals, [&[0x67, 1][..], &[0x68, 2, 3][..]]);
    assert_eq!(nals[0].as_ptr(), stap[3..].as_ptr(), "STAP-A entry copied");
}

#[test]
fn depacketizer_rebuilds_fu_a_header() {
    let mut depacketizer = Depacketizer::new();
    let mut nals = Vec::new();
    // NRI 2 from the indicator, type 5 from the FU header.
    for packet in [[0x5C, 0x85, 1], [0x5C, 0x05, 2], [0x5C, 0x45, 3]] {
        depacketizer
            .push(&Bytes::copy_from_slice(&packet), &mut nals)
            .unwrap();
    }
    assert_eq!(nals, [&[0x45, 1, 2, 3][..]]);
}

#[test]
fn fu_a_restart_discards_the_old_nal() {
    let mut depacketizer = Depacketizer::new();
    let mut nals = Vec::new();
    let packets: [&[u8]; 3] = [&[0x7C, 0x85, 1], &[0x7C, 0x85, 7], &[0x7C, 0x45, 8]];
    for packet in packets {
        depacketizer
            .push(&Bytes::copy_from_slice(packet), &mut nals)
            .unwrap();
    }
    assert_eq!(nals, [&[0x65, 7, 8][..]]);
    assert!(depacketizer.take_discarded());
    assert!(!depacketizer.take_discarded());
}

#[test]
fn depacketizer_rejects_broken_packets() {
    let mut d = Depacketizer::new();
    let mut nals = Vec::new();
    let mut push = |bytes: &[u8]| {
        let before = nals.len();
        let result = d.push(&Bytes::copy_from_slice(bytes), &mut nals);
        if result.is_err() {
            assert_eq!(nals.len(), before, "a broken packet must not leak NALs");
        }
        result
    };
    assert_eq!(push(&[]), Err(H264Error::EmptyPayload));
    assert_eq!(push(&[0x7C, 0x05, 1]), Err(H264Error::FuWithoutStart));
    assert_eq!(push(&[0x7C, 0x45, 1]), Err(H264Error::FuWithoutStart));
    assert_eq!(push(&[0x7C]), Err(H264Error::FuTooShort));
    assert_eq!(
        push(&[0x78, 0, 2, 0x67, 1, 0, 9, 0x68]),
        Err(H264Error::AggregateLengthPastEnd {
            at: 5,
            len: 9,
            remaining: 1
        })
    );
    assert_eq!(
        push(&[0x78, 0, 1, 0x67, 0]),
        Err(H264Error::AggregateTruncatedSize { at: 4 })
    );
    for packet_type in [0, 25, 26, 27, 29, 30, 31] {
        assert_eq!(
            push(&[0x60 | packet_type, 0, 0, 0]),
            Err(H264Error::UnsupportedPacketType {
                codec: "H.264",
                packet_type,
                name: H264::packet_type_name(packet_type),
            })
        );
    }
    // Zero-size entries are skipped; an FU-A with no data is harmless.
    assert_eq!(push(&[0x78, 0, 0, 0, 1, 0x41]), Ok(()));
    assert_eq!(push(&[0x7C, 0x81]), Ok(()));
    assert_eq!(nals, [&[0x41][..]]);
}

#[test]
fn error_messages_say_what_was_wrong() {
    let mut d = Depacketizer::new();
    let msg = d
        .push(&Bytes::from_static(&[0x7A, 0, 0]), &mut Vec::new())
        .expect_err("MTAP16")
        .to_string();
    assert!(
        msg.contains("H.264") && msg.contains("26") && msg.contains("MTAP16"),
        "{msg}"
    );
    let msg = H264Error::AggregateLengthPastEnd {
        at: 5,
        len: 9,
        remaining: 1,
    }
    .to_string();
    assert!(
        msg.contains('9') && msg.contains('5') && msg.contains('1'),
        "{msg}"
    );
}

#[test]
fn fu_a_over_4_mb_is_refused() {
    let mut d = Depacketizer::new();
    let mut nals = Vec::new();
    let mut fragment = vec![0x7C, 0x85];
    fragment.resize(60_002, 0xAB);
    let start = Bytes::from(fragment.clone());
    fragment[1] = 0x05;
    let middle = Bytes::from(fragment);
    d.push(&start, &mut nals).unwrap();
    let result = (0..100).try_for_each(|_| d.push(&middle, &mut nals));
    assert!(
        matches!(result, Err(H264Error::NalTooLarge { .. })),
        "{result:?}"
    );
    assert!(!d.has_partial());
    assert_eq!(d.push(&middle, &mut nals), Err(H264Error::FuWithoutStart));
}

// ---- Reframer ----

#[derive(Clone, Copy, Debug)]
enum CameraMode {
    /// One NAL per packet whatever its size (cameras with 64 KB MTUs).
    SingleNal,
    /// FU-A at this payload size, each small NAL on its own.
    FuA(usize),
    /// Small NALs in STAP-A, large ones as FU-A at this size.
    StapAndFuA(usize),
}

/// A camera's RTP packetizer: payloads and marker bits for one AU.
fn camera_packets(nals: &[Bytes], mode: CameraMode) -> Vec<(Bytes, bool)> {
    let mut payloads = Vec::new();
    match mode {
        CameraMode::SingleNal => payloads.extend(nals.iter().cloned()),
        CameraMode::FuA(size) => {
            for nal in nals {
                let mut packets = Vec::new();
                packetize_au(std::slice::from_ref(nal), 0, false, size, &mut packets);
                payloads.extend(packets.into_iter().map(|p| p.payload));
            }
        }
        CameraMode::StapAndFuA(size) => {
            let mut packets = Vec::new();
            packetize_au(nals, 0, false, size, &mut packets);
            payloads.extend(packets.into_iter().map(|p| p.payload));
        }
    }
    let last = payloads.len() - 1;
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, i == last))
        .collect()
}

struct Camera {
    seq: u16,
    timestamp: u32,
}

impl Camera {
    fn new() -> Self {
        // Start near the wrap to exercise it.
        Camera {
            seq: 65_530,
            timestamp: u32::MAX - 10_000,
        }
    }

    fn send(
        &mut self,
        reframer: &mut Reframer,
        nals: &[Bytes],
        mode: CameraMode,
        out: &mut Vec<OutPacket>,
    ) -> Result<(), H264Error> {
        self.timestamp = self.timestamp.wrapping_add(3000);
        for (payload, marker) in camera_packets(nals, mode) {
            self.seq = self.seq.wrapping_add(1);
            reframer.push_rtp_as_packets(self.seq, self.timestamp, marker, &payload, out)?;
        }
        Ok(())
    }
}

fn gop(rng: &mut Rng) -> Vec<Vec<Bytes>> {
    let mut aus = vec![{
        let mut au = vec![Bytes::from_static(&[0x09, 0x10])];
        let idr_len = 60_000 + rng.below(60_000);
        au.extend(idr_au(rng, idr_len));
        au
    }];
    for _ in 0..5 {
        let slice_len = 5_000 + rng.below(5_000);
        aus.push(vec![
            Bytes::from_static(&[0x09, 0x30]),
            nal(rng, 0x41, slice_len),
            nal(rng, 0x0C, 40),
        ]);
    }
    aus
}

fn without_aud_and_filler(au: &[Bytes]) -> Vec<Bytes> {
    au.iter()
        .filter(|n| !matches!(nal_type_of(n[0]), nal_type::AUD | nal_type::FILLER))
        .cloned()
        .collect()
}

#[test]
fn reframer_repacketizes_any_camera_packetization() {
    for mode in [
        CameraMode::SingleNal,
        CameraMode::FuA(500),
        CameraMode::FuA(1400),
        CameraMode::StapAndFuA(1400),
        CameraMode::StapAndFuA(64_000),
    ] {
        let mut rng = Rng(10);
        let mut reframer = Reframer::new(ParamSets::default());
        let mut camera = Camera::new();
        let mut out = Vec::new();
        let aus = gop(&mut rng);
        for au in &aus {
            camera.send(&mut reframer, au, mode, &mut out).unwrap();
        }
        let out_aus = split_aus(&out);
        assert_eq!(out_aus.len(), aus.len(), "{mode:?}");
        for (i, (sent, got)) in aus.iter().zip(&out_aus).enumerate() {
            assert_well_formed_au(got);
            assert_eq!(got[0].keyframe, i == 0);
            let expected_ts = Camera::new().timestamp.wrapping_add(3000 * (i as u32 + 1));
            assert_eq!(got[0].timestamp, expected_ts);
            assert_eq!(
                depacketize_all(got),
                without_aud_and_filler(sent),
                "{mode:?} AU {i}"
            );
        }
        assert_eq!(reframer.params(), &test_params());
    }
}

#[test]
fn sps_pps_injected_before_idr_that_lacks_them() {
    let mut rng = Rng(11);
    let mut reframer = Reframer::new(test_params());
    let mut camera = Camera::new();
    let idr = nal(&mut rng, 0x65, 20_000);
    let mut out = Vec::new();
    camera
        .send(
            &mut reframer,
            std::slice::from_ref(&idr),
            CameraMode::FuA(1400),
            &mut out,
        )
        .unwrap();
    let params = test_params();
    let expected = [params.sps.unwrap(), params.pps.unwrap(), idr];
    assert_eq!(depacketize_all(&out), expected);
    assert!(out[0].keyframe);
    assert!(!reframer.take_params_changed());
}

#[test]
fn only_missing_half_of_params_is_not_duplicated() {
    let mut rng = Rng(12);
    let mut reframer = Reframer::new(test_params());
    let mut camera = Camera::new();
    let params = test_params();
    let idr = nal(&mut rng, 0x65, 3_000);
    let mut out = Vec::new();
    let au = [params.pps.clone().unwrap(), idr.clone()];
    camera
        .send(&mut reframer, &au, CameraMode::SingleNal, &mut out)
        .unwrap();
    let expected = [params.sps.unwrap(), params.pps.unwrap(), idr];
    assert_eq!(depacketize_all(&out), expected);
}

#[test]
fn sps_pps_not_duplicated_when_present() {
    let mut rng = Rng(13);
    let mut reframer = Reframer::new(test_params());
    let mut camera = Camera::new();
    let au = idr_au(&mut rng, 30_000);
    let mut out = Vec::new();
    camera
        .send(&mut reframer, &au, CameraMode::StapAndFuA(1400), &mut out)
        .unwrap();
    assert_eq!(depacketize_all(&out), au);
}

#[test]
fn p_frames_get_no_param_sets() {
    let mut rng = Rng(14);
    let mut reframer = Reframer::new(test_params());
    let mut camera = Camera::new();
    let au = [nal(&mut rng, 0x41, 6_000)];
    let mut out = Vec::new();
    camera
        .send(&mut reframer, &au, CameraMode::FuA(1400), &mut out)
        .unwrap();
    assert_eq!(depacketize_all(&out), au);
    assert!(!out[0].keyframe);
}

#[test]
fn aus_are_emitted_before_params_are_known() {
    let mut rng = Rng(15);
    let mut reframer = Reframer::new(ParamSets::default());
    let mut camera = Camera::new();
    let au = [nal(&mut rng, 0x65, 4_000)];
    let mut out = Vec::new();
    camera
        .send(&mut reframer, &au, CameraMode::FuA(1400), &mut out)
        .unwrap();
    assert_eq!(depacketize_all(&out), au);
    assert!(out[0].keyframe);
}

#[test]
fn in_band_sps_updates_params() {
    let mut rng = Rng(16);
    let mut reframer = Reframer::new(test_params());
    let mut camera = Camera::new();
    let mut out = Vec::new();
    // Same SPS/PPS as the SDP: no change.
    camera
        .send(
            &mut reframer,
            &idr_au(&mut rng, 5_000),
            CameraMode::SingleNal,
            &mut out,
        )
        .unwrap();
    assert!(!reframer.take_params_changed());

    let new_sps = Bytes::from(high_1080p_sps());
    let au = [new_sps.clone(), nal(&mut rng, 0x65, 5_000)];
    camera
        .send(&mut reframer, &au, CameraMode::SingleNal, &mut out)
        .unwrap();
    assert!(reframer.take_params_changed());
    assert!(!reframer.take_params_changed(), "reported only once");
    assert_eq!(reframer.params().sps.as_ref(), Some(&new_sps));
    assert_eq!(reframer.params().resolution(), Some((1920, 1080)));

    // The next IDR without params gets the new SPS.
    out.clear();
    let idr = nal(&mut rng, 0x65, 5_000);
    camera
        .send(
            &mut reframer,
            std::slice::from_ref(&idr),
            CameraMode::SingleNal,
            &mut out,
        )
        .unwrap();
    let expected = [new_sps, test_params().pps.unwrap(), idr];
    assert_eq!(depacketize_all(&out), expected);
}

#[test]
fn params_learned_from_nothing_report_a_change() {
    let mut rng = Rng(17);
    let mut reframer = Reframer::new(ParamSets::default());
    let mut camera = Camera::new();
    let mut out = Vec::new();
    camera
        .send(
            &mut reframer,
            &idr_au(&mut rng, 5_000),
            CameraMode::StapAndFuA(1400),
            &mut out,
        )
        .unwrap();
    assert!(reframer.take_params_changed());
    assert_eq!(
        reframer.params().profile_level_id().as_deref(),
        Some("42c01f")
    );
}

/// Sends `aus` as FU-A at 1000 bytes, skipping the packets for which
/// `drop` says so; returns the AUs that came out.
fn send_with_loss(aus: &[Vec<Bytes>], drop: impl Fn(usize, usize) -> bool) -> Vec<Vec<Bytes>> {
    let mut reframer = Reframer::new(test_params());
    let mut out = Vec::new();
    let mut seq = 100u16;
    for (au_index, au) in aus.iter().enumerate() {
        let timestamp = 90_000 + 3_000 * au_index as u32;
        for (i, (payload, marker)) in camera_packets(au, CameraMode::FuA(1000))
            .into_iter()
            .enumerate()
        {
            seq = seq.wrapping_add(1);
            if !drop(au_index, i) {
                reframer
                    .push_rtp_as_packets(seq, timestamp, marker, &payload, &mut out)
                    .unwrap();
            }
        }
    }
    split_aus(&out).into_iter().map(depacketize_all).collect()
}

fn p_frames(rng: &mut Rng, count: usize) -> Vec<Vec<Bytes>> {
    (0..count).map(|_| vec![nal(rng, 0x41, 4_500)]).collect()
}

#[test]
fn sequence_gap_drops_the_partial_au() {
    let mut rng = Rng(18);
    let aus = p_frames(&mut rng, 3);
    assert_eq!(send_with_loss(&aus, |_, _| false), aus);
    // A middle fragment of AU 1 lost: AU 1 is dropped, the rest is intact.
    let got = send_with_loss(&aus, |au, i| au == 1 && i == 2);
    assert_eq!(got, [aus[0].clone(), aus[2].clone()]);
    // The first packet of AU 1 lost: the rest of AU 1 is dropped too.
    let got = send_with_loss(&aus, |au, i| au == 1 && i == 0);
    assert_eq!(got, [aus[0].clone(), aus[2].clone()]);
}

#[test]
fn lost_marker_packet_drops_that_au_and_keeps_later_ones() {
    let mut rng = Rng(19);
    let aus = p_frames(&mut rng, 4);
    let last_packet = camera_packets(&aus[1], CameraMode::FuA(1000)).len() - 1;
    let got = send_with_loss(&aus, |au, i| au == 1 && i == last_packet);
    // AU 2 may have lost its head for all we know, so only AU 3 is safe.
    assert_eq!(got, [aus[0].clone(), aus[3].clone()]);
}

#[test]
fn timestamp_change_ends_an_au_without_marker() {
    let mut reframer = Reframer::new(ParamSets::default());
    let mut out = Vec::new();
    let a = Bytes::from_static(&[0x41, 1, 2]);
    let b = Bytes::from_static(&[0x41, 3, 4]);
    reframer
        .push_rtp_as_packets(1, 1000, false, &a, &mut out)
        .unwrap();
    assert!(out.is_empty());
    reframer
        .push_rtp_as_packets(2, 4000, false, &b, &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].marker && out[0].au_start);
    assert_eq!((out[0].timestamp, &out[0].payload), (1000, &a));
    reframer
        .push_rtp_as_packets(3, 4000, true, &a, &mut out)
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].timestamp, 4000);
    assert_eq!(depacketize_all(&out[1..]), [b, a]);
}

#[test]
fn late_and_duplicate_packets_are_ignored() {
    let mut reframer = Reframer::new(ParamSets::default());
    let mut out = Vec::new();
    let a = Bytes::from_static(&[0x41, 1]);
    reframer
        .push_rtp_as_packets(10, 0, false, &a, &mut out)
        .unwrap();
    reframer
        .push_rtp_as_packets(10, 0, false, &a, &mut out)
        .unwrap();
    reframer
        .push_rtp_as_packets(11, 0, false, &a, &mut out)
        .unwrap();
    reframer
        .push_rtp_as_packets(9, 0, false, &a, &mut out)
        .unwrap();
    reframer
        .push_rtp_as_packets(12, 0, true, &a, &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(depacketize_all(&out).len(), 3);
}

#[test]
fn broken_packet_is_an_error_and_the_reframer_recovers() {
    let mut rng = Rng(20);
    let mut reframer = Reframer::new(test_params());
    let mut out = Vec::new();
    let good = nal(&mut rng, 0x41, 100);
    reframer
        .push_rtp_as_packets(1, 0, false, &good, &mut out)
        .unwrap();
    let broken = Bytes::from_static(&[0x78, 0, 50, 0x41]);
    assert!(matches!(
        reframer.push_rtp_as_packets(2, 0, false, &broken, &mut out),
        Err(H264Error::AggregateLengthPastEnd { .. })
    ));
    assert_eq!(
        reframer.push_rtp_as_packets(3, 0, true, &good, &mut out),
        Ok(())
    );
    assert!(out.is_empty(), "an AU with a broken packet is dropped");
    let orphan = Bytes::from_static(&[0x7C, 0x05, 1, 2]);
    assert_eq!(
        reframer.push_rtp_as_packets(4, 3000, false, &orphan, &mut out),
        Err(H264Error::FuWithoutStart)
    );
    assert_eq!(
        reframer.push_rtp_as_packets(5, 6000, true, &good, &mut out),
        Ok(())
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].timestamp, 6000);
    assert_eq!(
        reframer.push_rtp_as_packets(6, 9000, true, &Bytes::new(), &mut out),
        Err(H264Error::EmptyPayload)
    );
}

#[test]
fn fu_a_without_end_at_the_marker_drops_the_au() {
    let mut reframer = Reframer::new(ParamSets::default());
    let mut out = Vec::new();
    let start = Bytes::from_static(&[0x7C, 0x81, 1]);
    reframer
        .push_rtp_as_packets(1, 0, true, &start, &mut out)
        .unwrap();
    reframer
        .push_rtp_as_packets(2, 3000, true, &Bytes::from_static(&[0x41, 5]), &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].timestamp, 3000);
}

#[test]
fn huge_nal_in_reframer_is_refused() {
    let mut reframer = Reframer::new(ParamSets::default());
    let mut out = Vec::new();
    let mut fragment = vec![0x7C, 0x85];
    fragment.resize(64_000, 1);
    let start = Bytes::from(fragment.clone());
    fragment[1] = 0x05;
    let middle = Bytes::from(fragment);
    let mut seq = 0u16;
    let mut push = |payload: &Bytes, ts: u32, marker: bool| {
        seq = seq.wrapping_add(1);
        reframer.push_rtp_as_packets(seq, ts, marker, payload, &mut out)
    };
    push(&start, 0, false).unwrap();
    let mut result = Ok(());
    for _ in 0..100 {
        result = push(&middle, 0, false);
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(H264Error::NalTooLarge { .. })),
        "{result:?}"
    );
    push(&Bytes::from_static(&[0x41, 1]), 3000, true).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].timestamp, 3000);
}

#[test]
fn random_payloads_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut depacketizer = Depacketizer::new();
    let mut reframer = Reframer::new(test_params());
    let mut nals = Vec::new();
    let mut out = Vec::new();
    let mut seq = 0u16;
    for _ in 0..10_000 {
        let spread = if rng.below(10) == 0 { 5_000 } else { 40 };
        let len = rng.below(spread);
        let mut payload = rng.bytes(len);
        // Bias towards the interesting packet types.
        if let Some(first) = payload.first_mut() {
            *first = match rng.below(4) {
                0 => (*first & 0xE0) | nal_type::STAP_A,
                1 => (*first & 0xE0) | nal_type::FU_A,
                _ => *first,
            };
        }
        let payload = Bytes::from(payload);
        let _ = depacketizer.push(&payload, &mut nals);
        seq = seq.wrapping_add(if rng.below(50) == 0 { 3 } else { 1 });
        let timestamp = (rng.below(4) * 3000) as u32;
        let _ = reframer.push_rtp_as_packets(seq, timestamp, rng.below(5) == 0, &payload, &mut out);
        nals.clear();
    }
    assert!(out.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
    let _ = reframer.params().resolution();
}

// ---- ParamSets ----

#[test]
fn sprop_round_trip() {
    let params = ParamSets::from_sprop("Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM4xsg==").unwrap();
    assert_eq!(params.sps.as_ref().map(|s| s.len()), Some(23));
    assert_eq!(params.pps.as_deref(), Some(&[0x68, 0xCE, 0x31, 0xB2][..]));
    assert_eq!(params.profile_level_id().as_deref(), Some("42c01f"));
    assert_eq!(
        params.to_sprop().as_deref(),
        Some("Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM4xsg==")
    );
    assert_eq!(params.resolution(), Some((1280, 720)));
    // Missing padding and whitespace are tolerated.
    let unpadded = ParamSets::from_sprop(" Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg, aM4xsg").unwrap();
    assert_eq!(unpadded, params);
}

#[test]
fn sprop_with_one_set_has_no_sprop_output() {
    let params = ParamSets::from_sprop("Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=").unwrap();
    assert!(params.pps.is_none());
    assert_eq!(params.to_sprop(), None);
    assert_eq!(ParamSets::default().to_sprop(), None);
    assert_eq!(ParamSets::default().profile_level_id(), None);
    assert_eq!(ParamSets::default().resolution(), None);
}

#[test]
fn bad_sprop_is_refused() {
    for value in [
        "Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,a",
        "Z0LA!!!!",
        "Z0LAH9oB%BbsBEAAAAMAQAAADyPGDKg=",
        "Z0I=",
        "Z0LAH9oBQBbsBEAAAAMAQAAADyPGDK,aM4xsg==",
    ] {
        let result = ParamSets::from_sprop(value);
        assert!(
            matches!(result, Err(H264Error::BadSprop(_))),
            "{value}: {result:?}"
        );
    }
    assert!(ParamSets::from_sprop("").unwrap() == ParamSets::default());
}

/// Writes H.264 syntax elements, for hand-built SPS test vectors.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn bit(&mut self, bit: bool) {
        if self.bits.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if bit {
            *self.bytes.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
        }
        self.bits += 1;
    }

    fn bits(&mut self, count: u32, value: u64) {
        for i in (0..count).rev() {
            self.bit(value >> i & 1 == 1);
        }
    }

    fn ue(&mut self, value: u64) {
        let coded = value + 1;
        let len = 64 - coded.leading_zeros();
        self.bits(len - 1, 0);
        self.bits(len, coded);
    }

    fn se(&mut self, value: i64) {
        let mapped = if value > 0 { 2 * value - 1 } else { -2 * value };
        self.ue(mapped as u64);
    }

    /// A list that rises, then ends early with nextScale == 0, which
    /// stops the deltas (the parser must stop reading there too).
    fn scaling_list(&mut self, size: usize) {
        let (mut last, mut next) = (8i64, 8i64);
        for j in 0..size {
            if next != 0 {
                let delta = if j == size / 2 {
                    -last
                } else {
                    1 + j as i64 % 3
                };
                self.se(delta);
                next = (last + delta).rem_euclid(256);
            }
            if next != 0 {
                last = next;
            }
        }
    }

    /// rbsp_trailing_bits, then emulation prevention, then NAL header.
    fn into_sps_nal(mut self) -> Vec<u8> {
        self.bit(true);
        while !self.bits.is_multiple_of(8) {
            self.bit(false);
        }
        let mut nal = vec![0x67];
        let mut zeros = 0;
        for byte in self.bytes {
            if zeros >= 2 && byte <= 3 {
                nal.push(3);
                zeros = 0;
            }
            zeros = if byte == 0 { zeros + 1 } else { 0 };
            nal.push(byte);
        }
        nal
    }
}

struct SpsFields {
    profile_idc: u64,
    chroma_format_idc: u64,
    scaling_matrix: bool,
    poc_type: u64,
    width_mbs: u64,
    height_map_units: u64,
    frame_mbs_only: bool,
    crop: [u64; 4],
}

fn build_sps(f: &SpsFields) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(8, f.profile_idc);
    w.bits(8, 0xC0); // constraint flags
    w.bits(8, 31); // level 3.1
    w.ue(0); // seq_parameter_set_id
    if has_chroma_fields(f.profile_idc) {
        w.ue(f.chroma_format_idc);
        if f.chroma_format_idc == 3 {
            w.bit(false); // separate_colour_plane_flag
        }
        w.ue(0); // bit_depth_luma_minus8
        w.ue(0); // bit_depth_chroma_minus8
        w.bit(false); // qpprime_y_zero_transform_bypass_flag
        w.bit(f.scaling_matrix);
        if f.scaling_matrix {
            let lists = if f.chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                let present = i % 2 == 0;
                w.bit(present);
                if present {
                    w.scaling_list(if i < 6 { 16 } else { 64 });
                }
            }
        }
    }
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(f.poc_type);
    match f.poc_type {
        0 => w.ue(2),
        1 => {
            w.bit(false);
            w.se(-3);
            w.se(5);
            w.ue(2);
            w.se(1);
            w.se(-1);
        }
        _ => {}
    }
    w.ue(1); // max_num_ref_frames
    w.bit(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(f.width_mbs - 1);
    w.ue(f.height_map_units - 1);
    w.bit(f.frame_mbs_only);
    if !f.frame_mbs_only {
        w.bit(true); // mb_adaptive_frame_field_flag
    }
    w.bit(true); // direct_8x8_inference_flag
    let cropped = f.crop.iter().any(|&c| c != 0);
    w.bit(cropped);
    if cropped {
        for c in f.crop {
            w.ue(c);
        }
    }
    w.bit(false); // vui_parameters_present_flag
    w.into_sps_nal()
}

/// 1280x720 coded as 1280x736 with 16 rows cropped (8 crop units of 2).
fn baseline_720p_fields() -> SpsFields {
    SpsFields {
        profile_idc: 66,
        chroma_format_idc: 1,
        scaling_matrix: false,
        poc_type: 2,
        width_mbs: 80,
        height_map_units: 46,
        frame_mbs_only: true,
        crop: [0, 0, 0, 8],
    }
}

fn baseline_720p_sps() -> Vec<u8> {
    build_sps(&baseline_720p_fields())
}

fn high_1080p_sps() -> Vec<u8> {
    build_sps(&SpsFields {
        profile_idc: 100,
        poc_type: 0,
        width_mbs: 120,
        height_map_units: 68,
        crop: [0, 0, 0, 4],
        ..baseline_720p_fields()
    })
}

fn resolution_of(sps: Vec<u8>) -> Option<(u32, u32)> {
    ParamSets {
        sps: Some(Bytes::from(sps)),
        pps: None,
    }
    .resolution()
}

#[test]
fn resolution_of_hand_built_sps() {
    let base = baseline_720p_fields;
    assert_eq!(resolution_of(baseline_720p_sps()), Some((1280, 720)));
    assert_eq!(resolution_of(high_1080p_sps()), Some((1920, 1080)));
    let high_720p = SpsFields {
        profile_idc: 100,
        ..base()
    };
    assert_eq!(resolution_of(build_sps(&high_720p)), Some((1280, 720)));
    let with_scaling = SpsFields {
        profile_idc: 100,
        scaling_matrix: true,
        poc_type: 1,
        ..base()
    };
    assert_eq!(resolution_of(build_sps(&with_scaling)), Some((1280, 720)));
    // 4:4:4 crops in luma samples: 16 rows are 16 units.
    let yuv444 = SpsFields {
        profile_idc: 244,
        chroma_format_idc: 3,
        crop: [0, 0, 0, 16],
        ..base()
    };
    assert_eq!(resolution_of(build_sps(&yuv444)), Some((1280, 720)));
    let yuv444_scaling = SpsFields {
        scaling_matrix: true,
        ..yuv444
    };
    assert_eq!(resolution_of(build_sps(&yuv444_scaling)), Some((1280, 720)));
    // Interlaced: map units are field MB pairs, crop unit is 4 rows.
    let interlaced = SpsFields {
        height_map_units: 23,
        frame_mbs_only: false,
        crop: [0, 0, 0, 4],
        ..base()
    };
    assert_eq!(resolution_of(build_sps(&interlaced)), Some((1280, 720)));
    let side_crop = SpsFields {
        width_mbs: 120,
        crop: [4, 4, 0, 8],
        ..base()
    };
    assert_eq!(resolution_of(build_sps(&side_crop)), Some((1904, 720)));
    let uncropped = SpsFields {
        height_map_units: 45,
        crop: [0; 4],
        ..base()
    };
    assert_eq!(resolution_of(build_sps(&uncropped)), Some((1280, 720)));
}

#[test]
fn hand_built_sps_has_emulation_prevention() {
    // Huge sizes give long zero runs, which the NAL escapes as 00 00 03.
    let fields = SpsFields {
        width_mbs: 65_536,
        height_map_units: 65_536,
        crop: [0; 4],
        ..baseline_720p_fields()
    };
    let sps = build_sps(&fields);
    assert!(sps.windows(3).any(|w| w == [0, 0, 3]));
    assert_eq!(resolution_of(sps), Some((1 << 20, 1 << 20)));
    assert_eq!(
        nal_to_rbsp(&[0x67, 0, 0, 3, 1, 0, 0, 3, 3]),
        [0x67, 0, 0, 1, 0, 0, 3]
    );
}

#[test]
fn x264_sps_parses() {
    let sps = SPROP_BASE64
        .decode("Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=")
        .unwrap();
    assert_eq!(resolution_of(sps), Some((1280, 720)));
}

#[test]
fn broken_sps_gives_no_resolution() {
    let full = high_1080p_sps();
    // Every prefix that stops before the cropping fields is unusable.
    for len in 0..full.len() - 2 {
        assert_eq!(resolution_of(full[..len].to_vec()), None, "prefix {len}");
    }
    let over_cropped = SpsFields {
        crop: [0, 0, 0, 400],
        ..baseline_720p_fields()
    };
    assert_eq!(resolution_of(build_sps(&over_cropped)), None);
    assert_eq!(
        resolution_of(vec![0x67, 0x42, 0xC0, 0x1F, 0, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(
        resolution_of(vec![0x68, 0xCE, 0x3C, 0x80]),
        None,
        "a PPS is no SPS"
    );
    let mut rng = Rng(21);
    for _ in 0..10_000 {
        let len = rng.below(40);
        let mut sps = rng.bytes(len);
        if let Some(first) = sps.first_mut() {
            *first = 0x67;
        }
        let _ = resolution_of(sps);
    }
}
