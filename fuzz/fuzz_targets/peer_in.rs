//! What an established WebRTC peer can send: SRTP and SRTCP (runts, forged SSRCs, replays)
//! into a session's inbound crypto, and STUN (checks and answers to our consent requests)
//! from any address.
//!
//! Each datagram is also parsed as RTCP in the clear (what an authenticated peer's SRTCP
//! decrypts to).
//!
//! The first byte picks the SRTP profile; the rest is split into datagrams at 0xFF bytes.
//! Besides "no panic": nothing is admitted without a valid tag (the key is one the fuzzer
//! cannot know), so every datagram is refused.
#![no_main]

use std::time::Instant;

use hubcast::config::SrtpProfile;
use hubcast::servers::webrtc::transport::ice::{consent_answered, kind};
use hubcast::servers::webrtc::transport::inbound::Inbound;
use hubcast::servers::webrtc::transport::peer::Peer;
use hubcast::media::rtcp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (profile, key, salt) = match pick % 3 {
        0 => (SrtpProfile::AeadAes128Gcm, vec![3u8; 16], vec![5u8; 12]),
        1 => (SrtpProfile::AeadAes256Gcm, vec![3u8; 32], vec![5u8; 12]),
        _ => (SrtpProfile::AesCm128HmacSha1_80, vec![3u8; 16], vec![5u8; 14]),
    };
    let Ok(mut inbound) = Inbound::new(&key, &salt, profile) else {
        return;
    };
    let (peer, _rx) = Peer::new(
        Instant::now(),
        "theirufrag".to_string(),
        "theirpasswordtheirpassword".to_string(),
    );
    for d in rest.split(|&b| b == 0xFF) {
        assert!(inbound.unprotect_rtp(d).is_err(), "forged SRTP accepted");
        assert!(inbound.unprotect_rtcp(d).is_err(), "forged SRTCP accepted");
        let mut n = 0;
        let _ = rtcp::walk(d, |_| n += 1);
        assert!(n <= d.len() / 4, "{n} RTCP packets in {} bytes", d.len());
        let _ = (rtcp::wants_keyframe(d), rtcp::sender_report_ntp(d, 7));
        let _ = kind(d);
        let _ = consent_answered(d, &peer);
    }
});
