//! WHIP/WHEP offers: the analysis `whip.rs` / `whep.rs` run on a POSTed offer, and the text
//! edits made to the offer (`strip_bare_nack`) and to the answer (`set_answer_plid`,
//! `add_host_candidates`). The answer edits get the fuzzed text as "answer", since they are
//! line rewrites that must cope with any text.
//!
//! Checked besides "no panic":
//! - `choose_h264` only picks H.264 with packetization-mode=1, and the plid it returns is a
//!   profile-level-id `h264_profile` understands;
//! - stripping feedback lines never turns a valid offer into an invalid one;
//! - `set_answer_plid` leaves exactly one profile-level-id in the rewritten fmtp lines;
//! - `add_host_candidates` only adds lines.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hubcast::webrtc::sdp::{
    add_host_candidates, choose_h264, h264_profile, parse_offer, set_answer_plid, strip_bare_nack,
    OfferMedia,
};
use libfuzzer_sys::fuzz_target;

/// Profile-level-ids of real sources: x264 baseline/main/high, Chromium's constrained
/// baseline, constrained high, junk.
const SOURCE_PLIDS: [&str; 7] = [
    "42c01f", "4d401f", "64001f", "42e01f", "640c1f", "f4001f", "zz",
];

fn check_choice(media: &OfferMedia, source: Option<&str>) -> Option<(u8, String)> {
    let (codec, plid) = choose_h264(media, source)?;
    assert!(codec.is("H264"), "{codec:?}");
    assert_eq!(
        codec.fmtp_param("packetization-mode"),
        Some("1"),
        "{codec:?}"
    );
    assert!(
        media.codecs.iter().any(|c| c == codec),
        "chosen codec not from this media"
    );
    assert!(
        h264_profile(&plid).is_some(),
        "answer plid {plid:?} is not a profile-level-id (source {source:?}, codec {codec:?})"
    );
    Some((codec.payload_type, plid))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let parsed = parse_offer(text);
    let stripped = strip_bare_nack(text);
    assert!(stripped.len() <= text.len());
    if parsed.is_ok() {
        if let Err(e) = parse_offer(&stripped) {
            panic!("offer valid before strip_bare_nack but not after: {e}\n{stripped}");
        }
    }
    // The offer the webrtc stack finally sees.
    let _ = parse_offer(&stripped);

    let mut answer_edits: Vec<(u8, String)> = Vec::new();
    if let Ok(medias) = &parsed {
        assert!(!medias.is_empty());
        for media in medias {
            for c in &media.codecs {
                let _ = c.fmtp_param("profile-level-id");
                let _ = c.is("opus");
            }
            // WHIP: stream unknown yet.
            if let Some(pick) = check_choice(media, None) {
                answer_edits.push(pick);
            }
            // WHEP: known sources, and each profile the offer itself names.
            for plid in SOURCE_PLIDS {
                if let Some(pick) = check_choice(media, Some(plid)) {
                    answer_edits.push(pick);
                }
            }
            let offered: Vec<String> = media
                .codecs
                .iter()
                .filter_map(|c| c.fmtp_param("profile-level-id").map(str::to_string))
                .collect();
            for plid in &offered {
                let _ = h264_profile(plid);
                if let Some(pick) = check_choice(media, Some(plid)) {
                    answer_edits.push(pick);
                }
            }
        }
    }
    // A fixed pick too, so the answer rewrite runs on inputs the offer parser refuses.
    answer_edits.push((96, "42e01f".to_string()));
    answer_edits.truncate(8);

    for (pt, plid) in &answer_edits {
        let out = set_answer_plid(text, *pt, plid);
        let prefix = format!("a=fmtp:{pt} ");
        for line in out.lines() {
            // Same test as set_answer_plid: "a=fmtp:96 " with nothing after is no fmtp line.
            if let Some(params) = line.trim_end().strip_prefix(&prefix) {
                let n = params
                    .split(';')
                    .filter(|kv| kv.trim().starts_with("profile-level-id="))
                    .count();
                assert_eq!(n, 1, "{line:?}");
            }
        }
    }

    let hosts = [
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let port = data.first().map_or(8189, |&b| u16::from(b) << 8 | 1);
    for n in 0..=hosts.len() {
        let out = add_host_candidates(text, &hosts[..n], port);
        assert!(out.len() >= text.len());
        if n == 0 {
            assert_eq!(out, text);
        }
    }
});
