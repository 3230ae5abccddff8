//! WHIP/WHEP offers: the analysis `whip.rs` / `whep.rs` run on a POSTed offer, and the
//! answer `answer::build` writes for it.
//!
//! Checked besides "no panic":
//! - `choose_h264` only picks H.264 with packetization-mode=1, and the plid it returns is a
//!   profile-level-id `h264_profile` understands;
//! - `with_plid` leaves exactly one profile-level-id in the fmtp;
//! - the answer to a valid offer parses again, with one m-section per offered one, in the
//!   same order and with the same mids.
#![no_main]

use std::net::SocketAddr;

use hubcast::servers::webrtc::answer::{self, Accepted, Section};
use hubcast::servers::webrtc::sdp::{choose_h264, h264_profile, parse_offer, Direction, OfferMedia};
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
    let Ok(offer) = parse_offer(text.as_ref()) else {
        return;
    };
    assert!(!offer.medias.is_empty());
    let mut sections = Vec::new();
    for media in &offer.medias {
        for c in &media.codecs {
            let _ = c.fmtp_param("profile-level-id");
            let _ = c.is("opus");
        }
        // WHIP: stream unknown yet.
        let mut pick = check_choice(media, None);
        // WHEP: known sources, and each profile the offer itself names.
        for plid in SOURCE_PLIDS {
            pick = pick.or(check_choice(media, Some(plid)));
        }
        let offered: Vec<String> = media
            .codecs
            .iter()
            .filter_map(|c| c.fmtp_param("profile-level-id").map(str::to_string))
            .collect();
        for plid in &offered {
            let _ = h264_profile(plid);
            let _ = check_choice(media, Some(plid));
        }
        let accepted = pick.and_then(|(pt, plid)| {
            let mut codec = media.codecs.iter().find(|c| c.payload_type == pt)?.clone();
            codec.fmtp = answer::with_plid(&codec.fmtp, &plid);
            let n = codec
                .fmtp
                .split(';')
                .filter(|kv| kv.trim().starts_with("profile-level-id="))
                .count();
            assert_eq!(n, 1, "{:?}", codec.fmtp);
            Some(Accepted {
                codec,
                direction: Direction::SendOnly,
                ssrc: Some(1),
            })
        });
        sections.push(Section {
            offer: media,
            accepted,
        });
    }
    let port = data.first().map_or(8189, |&b| u16::from(b) << 8 | 1);
    let candidates: Vec<SocketAddr> = vec![SocketAddr::from(([127, 0, 0, 1], port))];
    let text = answer::build(
        &answer::Transport {
            ice_ufrag: "ufrag",
            ice_pwd: "password",
            fingerprint: "sha-256 AA:BB",
            setup: "passive",
            candidates: &candidates,
        },
        &sections,
    );
    // Our answer must be as parseable as an offer (same grammar), section for section.
    // The offer's own text may carry mids or protos the SDP grammar accepts on the way in
    // but that do not survive a rewrite (spaces, empty), so only compare when they are plain.
    let plain = offer.medias.iter().all(|m| {
        m.mid
            .as_deref()
            .is_none_or(|v| !v.is_empty() && !v.contains(char::is_whitespace))
            && !m.proto.is_empty()
            && !m.kind.is_empty()
            && !m.kind.contains(char::is_whitespace)
    });
    // Without an accepted section there is no answer to give (the server says 406).
    if plain && sections.iter().any(|s| s.accepted.is_some()) {
        let back = parse_offer(&text).unwrap_or_else(|e| panic!("answer unparsable: {e}\n{text}"));
        assert_eq!(back.medias.len(), offer.medias.len(), "{text}");
        for (a, o) in back.medias.iter().zip(&offer.medias) {
            assert_eq!(a.mid, o.mid);
            assert_eq!(a.kind, o.kind);
        }
    }
});
