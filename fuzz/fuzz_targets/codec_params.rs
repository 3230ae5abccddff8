//! Codec parameters from outside: an SDP media description's rtpmap and fmtp (RTSP
//! ANNOUNCE, a camera's DESCRIBE) become a track and are described back, and the raw
//! parameter bytes they carry are read (AudioSpecificConfig, StreamMuxConfig, H.265 SPS).
//!
//! Input: the first byte picks the rtpmap; the rest, as text, is the fmtp line (and, as
//! bytes, the config and SPS read directly).
//!
//! Checked besides "no panic": a track described back reads back as the same track.
#![no_main]

use bytes::Bytes;
use hubcast::codec::mpeg4audio::AudioConfig;
use hubcast::codec::sdp::parse_media;
use hubcast::codec::{h265, sdp_for_track, track_from_sdp, Codec};
use libfuzzer_sys::fuzz_target;

const RTPMAPS: [&str; 8] = [
    "audio MPEG4-GENERIC/48000/2",
    "audio MP4A-LATM/44100/2",
    "video H265/90000",
    "video H264/90000",
    "audio L16/16000/1",
    "audio MPA/90000",
    "audio opus/48000/2",
    "video VP9/90000",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let _ = AudioConfig::parse(Bytes::copy_from_slice(rest));
    let sps = h265::ParamSets {
        sps: Some(Bytes::copy_from_slice(rest)),
        ..Default::default()
    };
    let _ = sps.profile_tier_level();

    let (kind, rtpmap) = RTPMAPS[usize::from(pick) % RTPMAPS.len()]
        .split_once(' ')
        .expect("kind");
    let fmtp: String = String::from_utf8_lossy(rest)
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm={kind} 0 RTP/AVP 97\r\n\
         a=rtpmap:97 {rtpmap}\r\na=fmtp:97 {fmtp}\r\n"
    );
    let Ok(medias) = parse_media(sdp.as_bytes()) else {
        return;
    };
    let Some(m) = medias.first() else { return };
    match track_from_sdp(m) {
        Ok((track, _)) => {
            let back = sdp_for_track(&track, 97);
            let again = track_from_sdp(&back).map(|(t, _)| t);
            match &track.codec {
                // A lone SPS or PPS is not described (sprop-parameter-sets needs both);
                // readers get them in band ahead of the next IDR.
                Codec::H264(_) => assert!(matches!(
                    again.map(|t| t.codec),
                    Ok(Codec::H264(_))
                )),
                _ => assert_eq!(again.as_ref(), Ok(&track), "{fmtp:?}"),
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
