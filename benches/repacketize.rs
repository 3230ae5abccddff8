//! Cost of turning camera H.264 RTP into WebRTC-ready packets, per access
//! unit: the reframer in ingest, then the packetizing the unit's first WebRTC reader does
//! once for all of them. Throughput is in output packets, so criterion reports packets/s.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hubcast::codec::h264::*;

/// Camera-side FU-A size (a typical 1500-byte MTU camera).
const CAMERA_PAYLOAD: usize = 1400;
const IDR_SIZE: usize = 80_000;
const P_SIZE: usize = 8_000;

/// Deterministic slice data (xorshift64); content does not affect the cost.
fn slice_nal(header: u8, len: usize, seed: u64) -> Bytes {
    let mut state = seed;
    let mut data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    data[0] = header;
    Bytes::from(data)
}

fn params() -> ParamSets {
    // Baseline 1280x720 from x264.
    ParamSets::from_sprop("Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM4xsg==").expect("valid sprop")
}

fn idr_nals() -> Vec<Bytes> {
    let params = params();
    vec![
        params.sps.expect("sps"),
        params.pps.expect("pps"),
        slice_nal(0x65, IDR_SIZE, 1),
    ]
}

fn p_nals() -> Vec<Bytes> {
    vec![slice_nal(0x41, P_SIZE, 2)]
}

/// The AU as the camera sends it: SPS/PPS in a STAP-A, slices as FU-A.
fn camera_payloads(nals: &[Bytes]) -> Vec<(Bytes, bool)> {
    let mut packets = Vec::new();
    packetize_au(nals, CAMERA_PAYLOAD, &mut packets);
    packets.into_iter().map(|p| (p.payload, p.marker)).collect()
}

/// Feeds the same AU again and again with advancing sequence numbers and
/// timestamps, as a live camera would.
struct Feed {
    payloads: Vec<(Bytes, bool)>,
    reframer: Reframer,
    seq: u16,
    timestamp: u32,
    aus: Vec<AccessUnit>,
    out: Vec<OutPacket>,
}

impl Feed {
    fn new(nals: &[Bytes]) -> Self {
        Feed {
            payloads: camera_payloads(nals),
            reframer: Reframer::new(params()),
            seq: 0,
            timestamp: 0,
            aus: Vec::new(),
            out: Vec::new(),
        }
    }

    /// One access unit through the Reframer; returns the output packet count.
    fn push_au(&mut self) -> usize {
        self.out.clear();
        self.timestamp = self.timestamp.wrapping_add(3000);
        for (payload, marker) in &self.payloads {
            self.seq = self.seq.wrapping_add(1);
            let result = self.reframer.push_rtp(
                self.seq,
                self.timestamp,
                *marker,
                black_box(payload),
                &mut self.aus,
            );
            black_box(result).expect("well-formed input");
        }
        // What the first WebRTC reader of the unit has made, once for all of them.
        for au in self.aus.drain(..) {
            packetize_access_unit(&au, MAX_PAYLOAD, &mut self.out);
        }
        black_box(&self.out);
        self.out.len()
    }
}

fn bench_reframer(c: &mut Criterion) {
    let mut group = c.benchmark_group("reframer");
    for (name, nals) in [("idr_80k", idr_nals()), ("p_8k", p_nals())] {
        let mut feed = Feed::new(&nals);
        let packets = feed.push_au();
        group.throughput(Throughput::Elements(packets as u64));
        group.bench_function(name, |b| b.iter(|| feed.push_au()));
    }
    group.finish();
}

fn bench_packetize(c: &mut Criterion) {
    let mut group = c.benchmark_group("packetize_au");
    for (name, nals) in [("idr_80k", idr_nals()), ("p_8k", p_nals())] {
        let mut out = Vec::new();
        packetize_au(&nals, MAX_PAYLOAD, &mut out);
        group.throughput(Throughput::Elements(out.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                packetize_au(black_box(&nals), MAX_PAYLOAD, &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_reframer, bench_packetize);
criterion_main!(benches);
