//! Allocations on the media path, counted: the hub's fan-out to 50 readers, and what each
//! viewer's task does per packet (`Outbound::write`: RTP header and payload into its
//! reusable buffer, SRTP AES-GCM in place), i.e. everything between the hub and the socket;
//! and what ingest adds on the way from a source into the hub.
//!
//! A counting wrapper around the system allocator counts allocations (alloc, alloc_zeroed,
//! realloc) per thread, so other tests running in parallel threads do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use hubcast::codec::frame::{Packetizer, RtpPayload};
use hubcast::path::{Hub, Packet, RtpFormat, Track, Unit};
use hubcast::servers::webrtc::srtp::{Profile, SrtpKeys, SrtpSender};
use hubcast::servers::webrtc::transport::outbound::Outbound;
use hubcast::servers::webrtc::transport::rtcp::RtpProtector;
use hubcast::stream::unit::Payloads;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

const READERS: usize = 50;
const PACKETS: u64 = 1000;
const WARMUP: u64 = 2000;

struct Viewer {
    srtp: RtpProtector,
    out: Outbound,
    scratch: [u8; 1500],
}

#[test]
fn media_path_allocations() {
    let hub = Hub::new("alloc", vec![Track::h264(Default::default())], 1024);
    let mut readers: Vec<_> = (0..READERS).map(|_| hub.add_reader().unwrap()).collect();
    let keys = SrtpKeys {
        master_key: [3; 16],
        master_salt: vec![5; 12],
    };
    let mut viewers: Vec<Viewer> = (0..READERS)
        .map(|i| Viewer {
            srtp: RtpProtector::InPlace(SrtpSender::new(Profile::AeadAes128Gcm, &keys).unwrap()),
            out: Outbound::new(0x1000 + i as u32, 96, 90_000, (i as u16).wrapping_mul(1311)),
            scratch: [0; 1500],
        })
        .collect();
    let payload = Bytes::from(vec![0x42u8; 1188]);

    let mut hub_allocs = 0u64;
    let mut srtp_allocs = 0u64;
    let mut sent = 0u64;
    let mut protected_bytes = 0usize;
    let mut warmup_hub_allocs = 0u64;
    for i in 0..WARMUP + PACKETS {
        if i == WARMUP {
            warmup_hub_allocs = hub_allocs;
            hub_allocs = 0;
            srtp_allocs = 0;
        }
        // A keyframe every 30 packets, as a camera with a 1 s GOP at 30 fps.
        let keyframe = i % 30 == 0;
        let one = Payloads::One(RtpPayload {
            marker: true,
            payload: payload.clone(),
        });
        let unit = Unit::received(
            0,
            i as i64 * 3000,
            keyframe,
            keyframe,
            one,
            None,
            Packetizer::H264,
        );

        let before = allocs();
        hub.write(unit);
        let mut received: [Option<Packet>; READERS] = std::array::from_fn(|_| None);
        for (slot, r) in received.iter_mut().zip(readers.iter_mut()) {
            *slot = r.try_recv();
        }
        hub_allocs += allocs() - before;

        let before = allocs();
        for (p, v) in received.iter().zip(viewers.iter_mut()) {
            let p = p.as_ref().expect("every reader gets every packet");
            sent += 1;
            for rtp in p.rtp(RtpFormat::WebRtc) {
                protected_bytes += v
                    .out
                    .write(&mut v.scratch, p.rtp_timestamp(), rtp, &mut v.srtp)
                    .unwrap();
            }
        }
        srtp_allocs += allocs() - before;
        drop(received);
    }

    // The counter does count on this thread.
    let before = allocs();
    drop(std::hint::black_box(vec![1u8; 8]));
    assert_eq!(
        allocs() - before,
        1,
        "the counting allocator is not counting"
    );

    let per_reader_packet = hub_allocs as f64 / (PACKETS as f64 * READERS as f64);
    println!(
        "over {PACKETS} packets x {READERS} readers (after {WARMUP} warm-up packets): \
         hub write+drain {hub_allocs} allocations ({per_reader_packet:.4} per packet per reader), \
         SRTP protect {srtp_allocs} allocations; warm-up: hub {warmup_hub_allocs} allocations; \
         {sent} packets, {protected_bytes} bytes protected in all"
    );
    assert_eq!(srtp_allocs, 0, "SRTP protection must not allocate");
    // Measured: one per packet, the unit's shared `Arc` (made once per path, whatever the
    // number of readers), and nothing per reader. tokio's mpsc allocates its queue in
    // blocks of 32 slots, but once the receiver has consumed a block it hands it back to
    // the sender for reuse (and on a single thread the hand-back never loses a race), so
    // after warm-up a drained queue allocates nothing; the GOP cache's Vec keeps its
    // capacity across keyframes. We assert what we measured so any regression shows.
    assert!(warmup_hub_allocs > 0, "warm-up grew the queues");
    assert_eq!(
        hub_allocs, PACKETS,
        "hub write + drain: one allocation per unit, none per reader"
    );
    assert_eq!(
        hub.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// RTP from a source into the hub (`Ingest::push_rtp`): a WebRTC publisher's packets
/// (passthrough) and a camera's FU-A (reframed to WebRTC size), with one reader draining.
/// The receive loops copy each datagram into its own `Bytes` before this (1 allocation per
/// packet, made so a packet never pins the receive buffer); what ingest adds is counted here.
#[test]
fn ingest_allocations() {
    use hubcast::stream::ingest::{H264Mode, Ingest};
    const FRAMES: u32 = 300;
    const PER_FRAME: u16 = 8;
    for mode in [H264Mode::Passthrough, H264Mode::Reframe] {
        let hub = Hub::new("ingest", vec![Track::h264(Default::default())], 4096);
        let mut reader = hub.add_reader().unwrap();
        let mut ingest = Ingest::new(std::sync::Arc::clone(&hub), &[Some(0)], mode);
        // Packets made up front: the count covers ingest, not the test's own buffers.
        let mut frames = Vec::new();
        let mut seq = 0u16;
        for f in 0..2 * FRAMES {
            let nal = if f % 30 == 0 { 0x65u8 } else { 0x41 };
            let mut pkts = Vec::new();
            for i in 0..PER_FRAME {
                let fu_header = (nal & 0x1f)
                    | if i == 0 { 0x80 } else { 0 }
                    | if i == PER_FRAME - 1 { 0x40 } else { 0 };
                let mut p = vec![0x80, if i == PER_FRAME - 1 { 0xe0 } else { 0x60 }];
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&(f * 3000).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, 7]);
                p.extend_from_slice(&[(nal & 0x60) | 28, fu_header]);
                p.extend_from_slice(&[0x33; 1000]);
                pkts.push(Bytes::from(p));
                seq = seq.wrapping_add(1);
            }
            frames.push(pkts);
        }
        let mut counted = 0u64;
        let mut out = 0u64;
        for (f, pkts) in frames.iter().enumerate() {
            let before = allocs();
            for p in pkts {
                ingest.push_rtp(0, p).expect("valid RTP");
            }
            // As a WebRTC reader does: the first one to a unit has it packetized.
            while let Some(u) = reader.try_recv() {
                out += u.rtp(RtpFormat::WebRtc).len() as u64;
            }
            if f as u32 >= FRAMES {
                counted += allocs() - before;
            }
        }
        let per_packet = counted as f64 / (FRAMES as f64 * PER_FRAME as f64);
        println!(
            "ingest {}: {counted} allocations over {FRAMES} frames of {PER_FRAME} FU-A packets \
             ({per_packet:.3} per packet in, after {FRAMES} warm-up frames); {out} packets out",
            match mode {
                H264Mode::Passthrough => "passthrough",
                H264Mode::Reframe => "reframe",
            }
        );
        assert!(out > 0, "the reader got packets");
        // Passthrough, per packet: `bytes` promoting the datagram's Vec-backed buffer to a
        // shared one when the payload is first sliced from it, and the unit's `Arc` (both
        // once per packet per path, never per reader), plus one per sealed GOP chunk of 64.
        // Reframe also assembles each access unit's NALs and packetizes them anew, once.
        let bound = match mode {
            H264Mode::Passthrough => 2.1,
            H264Mode::Reframe => 4.0,
        };
        assert!(per_packet <= bound, "{per_packet} allocations per packet");
    }
}
