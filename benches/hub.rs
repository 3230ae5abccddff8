//! Hub fan-out cost: one unit of one 1188-byte RTP packet (a pass-through packet)
//! written to a hub with N readers, every reader
//! drained with `try_recv` (so no queue fills). Reported per packet per reader
//! (`Throughput::Elements(N)`); ns per packet is the raw time.
//!
//! ```sh
//! cargo bench --bench hub -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hubcast::codec::frame::{Packetizer, RtpPayload};
use hubcast::path::{Hub, Track, Unit};
use hubcast::stream::unit::Payloads;

fn bench(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x5a; 1188]);
    let mut g = c.benchmark_group("hub_fanout_1188B");
    for n in [1usize, 10, 100, 500] {
        let hub = Hub::new("bench", vec![Track::h264(Default::default())], 1024);
        let mut readers: Vec<_> = (0..n).map(|_| hub.add_reader().unwrap()).collect();
        let mut i = 0u64;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("readers/{n}"), |b| {
            b.iter(|| {
                // A keyframe every 30 packets: readers join on the first, the GOP cache stays small.
                let keyframe = i.is_multiple_of(30);
                i += 1;
                let one = Payloads::One(RtpPayload {
                    marker: true,
                    payload: payload.clone(),
                });
                hub.write(Unit::received(
                    0,
                    i as i64 * 3000,
                    keyframe,
                    keyframe,
                    one,
                    None,
                    Packetizer::H264,
                ));
                for r in readers.iter_mut() {
                    black_box(r.try_recv());
                }
            })
        });
        // Every packet reached every reader.
        assert_eq!(
            hub.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        assert_eq!(
            hub.stats
                .packets_out
                .load(std::sync::atomic::Ordering::Relaxed),
            i * n as u64
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
