//! A publisher's RTP as the server takes it in: `rtp::parse` / `is_rtcp` on each datagram
//! (or interleaved frame), then `Ingest` into a `Hub` with one video and one audio track:
//! H.264 in both modes (camera reframing and WebRTC passthrough), H.265 (reframed), VP8,
//! VP9 and AV1 (passed through, key frames read from the payload); Opus, AAC as RFC 3640
//! and as LATM (depacketized into access units), L16 and MPEG audio (passed through). Every
//! input goes to every pipeline, so each codec gets the whole run. Readers join, lag and
//! drain so the hub's fan-out, GOP cache and keyframe wait all run. RTCP chunks go to
//! `Ingest::push_rtcp` (sender reports give units their wall-clock time).
//!
//! No tokio runtime is needed: the hub only uses `try_send` / `try_recv` and `watch`.
//!
//! Input: chunks, each: ctl (u8), length (u16 LE, clamped to what is left), bytes.
//! ctl bit 0: media 0 (video) or 1 (Opus); bit 1: drain the readers afterwards;
//! bit 2: a new reader joins (replacing the late one); bit 3: source discontinuity;
//! bit 4: fix up the RTP header (version 2, next sequence number, so mutations reach the
//! payload parsers); bit 5: feed the chunk to media 2 (not mapped to a track).
//!
//! Checked besides "no panic":
//! - readers only see tracks 0 and 1, video payloads fit each RTP format they go out in;
//! - a reader that joined without a cached GOP (or after a discontinuity) sees video only
//!   from a keyframe start on; a cached GOP starts with a keyframe start;
//! - the hub keeps its two tracks, with the right codecs.
#![no_main]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use hubcast::codec::sdp::parse_media;
use hubcast::codec::track_from_sdp;
use hubcast::media::rtp;
use hubcast::stream::hub::{Codec, Hub, Packet, Reader, Track};
use hubcast::stream::RtpFormat;
use hubcast::stream::ingest::{H264Mode, Ingest};
use libfuzzer_sys::fuzz_target;

struct Watcher {
    reader: Reader,
    /// No video seen yet since joining / the last discontinuity, and none may be seen
    /// before a keyframe start.
    want_keyframe: bool,
    /// Video must fit each RTP format (AV1 is passed on as the publisher sized it).
    fits: bool,
}

impl Watcher {
    fn join(hub: &Arc<Hub>, fits: bool) -> Watcher {
        let reader = hub.add_reader().expect("hub is open");
        for p in &reader.gop {
            check_packet(p, fits);
            assert_eq!(p.track, 0, "GOP cache holds video only");
        }
        if let Some(first) = reader.gop.first() {
            assert!(
                first.au_start && first.keyframe,
                "GOP does not start on a keyframe"
            );
        }
        let want_keyframe = reader.gop.is_empty();
        Watcher {
            reader,
            want_keyframe,
            fits,
        }
    }

    fn drain(&mut self) {
        while let Some(p) = self.reader.try_recv() {
            check_packet(&p, self.fits);
            if p.track == 0 && self.want_keyframe {
                assert!(
                    p.au_start && p.keyframe,
                    "a waiting reader got video before a keyframe: {p:?}"
                );
                self.want_keyframe = false;
            }
        }
    }
}

fn check_packet(p: &Packet, fits: bool) {
    assert!(p.track < 2, "track {}", p.track);
    if p.track == 0 && fits {
        // What every WebRTC and RTSP reader of the unit sends.
        for format in [RtpFormat::WebRtc, RtpFormat::Rtsp] {
            for r in p.rtp(format) {
                let len = r.payload.len();
                assert!(len <= format.max_payload(), "{len} bytes for {format:?}");
                assert!(len > 0);
            }
        }
    }
}

struct Pipeline {
    hub: Arc<Hub>,
    ingest: Ingest,
    early: Watcher,
    late: Option<Watcher>,
    video: Codec,
    audio: Codec,
}

/// An audio track as a camera's SDP gives it.
fn audio(rtpmap: &str, fmtp: &str) -> Track {
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\n\
         a=rtpmap:97 {rtpmap}\r\na=fmtp:97 {fmtp}\r\n"
    );
    let medias = parse_media(sdp.as_bytes()).expect("sdp");
    track_from_sdp(&medias[0]).expect("audio track").0
}

impl Pipeline {
    fn new(video: Track, audio: Track, mode: H264Mode) -> Pipeline {
        let codec = video.codec.clone();
        let audio_codec = audio.codec.clone();
        let hub = Hub::new("fuzz", vec![video, audio], 64);
        let ingest = Ingest::new(Arc::clone(&hub), &[Some(0), Some(1)], mode);
        let fits = !matches!(codec, Codec::Av1);
        let early = Watcher::join(&hub, fits);
        Pipeline {
            hub,
            ingest,
            early,
            late: None,
            video: codec,
            audio: audio_codec,
        }
    }

    fn watchers(&mut self) -> impl Iterator<Item = &mut Watcher> {
        std::iter::once(&mut self.early).chain(self.late.as_mut())
    }

    fn step(&mut self, ctl: u8, media: usize, chunk: &Bytes) {
        let before = self.hub.stats.invalid_in.load(Ordering::Relaxed);
        if rtp::is_rtcp(chunk) {
            self.ingest.push_rtcp(chunk);
        }
        let res = self.ingest.push_rtp(media, chunk);
        if let Err(e) = &res {
            let _ = e.to_string();
            if media < 2 {
                assert!(self.hub.stats.invalid_in.load(Ordering::Relaxed) > before);
            }
        }
        if ctl & 2 != 0 {
            self.watchers().for_each(Watcher::drain);
        }
        if ctl & 4 != 0 {
            // Drop the old late reader first: its slot leaves the hub.
            self.late = None;
            self.late = Some(Watcher::join(&self.hub, self.early.fits));
        }
        if ctl & 8 != 0 {
            // Whatever was queued before the restart may still be mid-GOP.
            self.watchers().for_each(Watcher::drain);
            self.hub.discontinuity();
            self.watchers().for_each(|w| w.want_keyframe = true);
        }
    }

    fn finish(mut self) {
        self.watchers().for_each(Watcher::drain);
        let tracks = self.hub.tracks();
        assert_eq!(tracks.len(), 2);
        assert_eq!(
            std::mem::discriminant(&tracks[0].codec),
            std::mem::discriminant(&self.video)
        );
        assert_eq!(tracks[1].codec, self.audio);
        if let Codec::H264(params) = &tracks[0].codec {
            let _ = params.resolution();
            let _ = params.profile_level_id();
        }
        if let Codec::H265(params) = &tracks[0].codec {
            let _ = params.profile_tier_level();
            let _ = params.to_fmtp();
        }
        let readers = 1 + usize::from(self.late.is_some());
        assert_eq!(self.hub.reader_count(), readers);
        drop(self.early);
        drop(self.late);
        assert_eq!(self.hub.reader_count(), 0);
        self.hub.close();
        assert!(self.hub.add_reader().is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    let h264 = || Track::h264(Default::default());
    let opus = || Track::opus(2);
    let aac = audio(
        "MPEG4-GENERIC/48000/2",
        "mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190",
    );
    let latm = audio("MP4A-LATM/48000/2", "cpresent=0;config=400023203fc0");
    let mut pipes = [
        Pipeline::new(h264(), opus(), H264Mode::Reframe),
        Pipeline::new(h264(), aac.clone(), H264Mode::Passthrough),
        Pipeline::new(Track::video(Codec::Vp8), latm, H264Mode::Passthrough),
        Pipeline::new(Track::video(Codec::Vp9), audio("L16/16000/1", ""), H264Mode::Passthrough),
        Pipeline::new(Track::video(Codec::Av1), audio("MPA/90000", ""), H264Mode::Passthrough),
        Pipeline::new(Track::h265(Default::default()), aac, H264Mode::Reframe),
    ];
    let mut seq = [0u16; 3];
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let (len, tail) = match tail {
            [lo, hi, tail @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), tail),
            _ => (tail.len(), &[][..]),
        };
        let len = len.min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;

        let media = if ctl & 0x20 != 0 {
            2
        } else {
            usize::from(ctl & 1)
        };
        let mut bytes = chunk.to_vec();
        if ctl & 0x10 != 0 && bytes.len() >= 12 {
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
            seq[media] = seq[media].wrapping_add(1);
            bytes[2..4].copy_from_slice(&seq[media].to_be_bytes());
        }
        let chunk = Bytes::from(bytes);

        // What the UDP and interleaved receivers do first.
        if rtp::is_rtcp(&chunk) {
            assert!(chunk.len() >= 2);
        }
        if let Ok(p) = rtp::parse(&chunk) {
            assert!(p.payload.len() + 12 <= chunk.len());
            assert!(p.payload_type < 128);
        }
        for pipe in pipes.iter_mut() {
            pipe.step(ctl, media, &chunk);
        }
    }
    for pipe in pipes {
        pipe.finish();
    }
});
