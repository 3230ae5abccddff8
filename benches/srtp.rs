//! SRTP protection per 1200-byte RTP packet: hubcast's in-place `SrtpSender::protect_rtp`
//! against `webrtc_srtp::Context::encrypt_rtp` (which allocates its output), for
//! AEAD_AES_128_GCM and AES_CM_128_HMAC_SHA1_80; and the whole per-viewer send path short of
//! the socket (`Outbound::write`: RTP header + shared payload into the viewer's buffer,
//! protect in place).
//!
//! ```sh
//! cargo bench --bench srtp -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hubcast::codec::frame::RtpPayload;
use hubcast::servers::webrtc::srtp::{Profile, SrtpKeys, SrtpSender};
use hubcast::servers::webrtc::transport::outbound::Outbound;
use hubcast::servers::webrtc::transport::rtcp::RtpProtector;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

const PACKET: usize = 1200;

/// A 1200-byte RTP packet: 12-byte header, 1188-byte payload.
fn packet() -> Vec<u8> {
    let mut p = vec![0x80, 96, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef];
    p.extend((0..PACKET - 12).map(|i| i as u8));
    p
}

fn keys(profile: Profile) -> SrtpKeys {
    SrtpKeys {
        master_key: [7; 16],
        master_salt: vec![9; profile.salt_len()],
    }
}

fn bench(c: &mut Criterion) {
    let plain = packet();
    let mut g = c.benchmark_group("srtp_protect_1200B");
    g.throughput(Throughput::Elements(1));
    for (name, profile, theirs) in [
        (
            "gcm",
            Profile::AeadAes128Gcm,
            ProtectionProfile::AeadAes128Gcm,
        ),
        (
            "cm_hmac_sha1_80",
            Profile::AesCm128HmacSha1_80,
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
    ] {
        let k = keys(profile);
        let mut ours = SrtpSender::new(profile, &k).unwrap();
        let mut buf = [0u8; 1500];
        let mut seq = 0u16;
        g.bench_function(format!("hubcast/{name}"), |b| {
            b.iter(|| {
                // Each packet is copied into the reusable buffer first, as a viewer would.
                buf[..PACKET].copy_from_slice(&plain);
                seq = seq.wrapping_add(1);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                black_box(ours.protect_rtp(black_box(&mut buf), PACKET).unwrap())
            })
        });
        let mut ctx = Context::new(&k.master_key, &k.master_salt, theirs, None, None).unwrap();
        let mut pkt = plain.clone();
        g.bench_function(format!("webrtc_srtp/{name}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                black_box(ctx.encrypt_rtp(black_box(&pkt)).unwrap())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("send_path_1188B_payload");
    g.throughput(Throughput::Elements(1));
    let pkt = RtpPayload {
        marker: false,
        payload: Bytes::from(plain[12..].to_vec()),
    };
    for (name, profile) in [
        ("gcm", Profile::AeadAes128Gcm),
        ("cm_hmac_sha1_80", Profile::AesCm128HmacSha1_80),
    ] {
        let mut srtp = RtpProtector::InPlace(SrtpSender::new(profile, &keys(profile)).unwrap());
        let mut out = Outbound::new(0xdead_beef, 102, 90_000, 0);
        let mut buf = [0u8; 1500];
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    out.write(&mut buf, 90_000, black_box(&pkt), &mut srtp)
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
