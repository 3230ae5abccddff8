//! Codecs beyond H.264 and Opus, end to end with real peers: a camera's G.711 (µ-law and
//! A-law) and G.722, pushed by ffmpeg over RTSP, reach WHEP viewers as the same tone and
//! RTSP readers as the same codec; AAC (RFC 3640 and LATM), L16 and MP3 read back over RTSP
//! as the same tone; H.265, VP8, VP9 and H.264 with B-frames read back over RTSP.

mod common;

use std::time::Duration;

use common::*;
use tokio::process::Command;

/// ITU-T G.711 µ-law and A-law expansion to 16-bit linear.
fn ulaw(b: u8) -> i16 {
    let b = !b;
    let t = ((i32::from(b & 0x0f) << 3) + 0x84) << ((b & 0x70) >> 4);
    (if b & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

fn alaw(b: u8) -> i16 {
    let b = b ^ 0x55;
    let seg = (b & 0x70) >> 4;
    let mut t = i32::from(b & 0x0f) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if b & 0x80 != 0 { t } else { -t }) as i16
}

/// The frequency of a tone from its zero crossings.
fn pitch(samples: &[i16], rate: f64) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / rate)
}

/// ffprobe shows the path's audio over RTSP as `codec,rate,channels`, and ffmpeg decodes
/// 3 s of the path without an error.
async fn assert_reads_back(url: &str, audio: &str) {
    let probed = probe(url, "a:0", "stream=codec_name,sample_rate,channels").await;
    assert_eq!(probed, audio, "ffprobe over RTSP");
    let out = decode_3s(url, &["-f", "null", "-"]).await;
    let errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(
        errors.is_empty(),
        "{audio}: decode errors over RTSP: {errors}"
    );
}

/// What ffprobe shows of one stream of the path over RTSP, as CSV.
async fn probe(url: &str, stream: &str, entries: &str) -> String {
    ffprobe_stream(url, "tcp", stream, entries).await
}

/// ffmpeg decoding 3 s of the path over RTSP into `output` (its arguments).
async fn decode_3s(url: &str, output: &[&str]) -> std::process::Output {
    let mut args = vec![
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        "-i",
        url,
        "-t",
        "3",
    ];
    args.extend_from_slice(output);
    ffmpeg_tool("ffmpeg", &args, Duration::from_secs(30)).await
}

fn push_audio(url: &str, codec: &str, rate: &str) -> tokio::process::Child {
    push_audio_with(url, &["-c:a", codec, "-ar", rate, "-ac", "1"])
}

/// ffmpeg pushing H.264 and a 440 Hz tone over RTSP, the audio encoded as `audio` says.
fn push_audio_with(url: &str, audio: &[&str]) -> tokio::process::Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(X264)
        .args(["-g", "30"])
        .args(audio)
        .args(["-f", "rtsp", "-rtsp_transport", "tcp", url])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_from_a_camera_reaches_whep_and_rtsp_readers() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    for (codec, pt, expand) in [
        ("pcm_mulaw", 0u8, ulaw as fn(u8) -> i16),
        ("pcm_alaw", 8, alaw),
    ] {
        let path = format!("cam_{codec}");
        let mut ff = push_audio(&rtsp_url(&server, &path), codec, "8000");
        wait_stream(&server, &path, Duration::from_secs(15)).await;

        // A WHEP viewer that offers G.711 after Opus, as browsers do, gets the path's law.
        let opts = ViewerOptions {
            static_audio: true,
            ..Default::default()
        };
        let mut v = Viewer::connect(&whep_url(&server, &path), opts)
            .await
            .expect("WHEP with G.711 offered");
        assert!(v.wait_connected(Duration::from_secs(10)).await);
        tokio::time::sleep(Duration::from_secs(3)).await;
        v.snapshot(|r| {
            assert_eq!(r.audio_pt, Some(pt), "{codec}: payload type of the audio");
            assert!(r.aus.len() >= 30, "{codec}: {} video frames", r.aus.len());
            let samples: Vec<i16> = r.audio_payload.iter().map(|&b| expand(b)).collect();
            assert!(samples.len() >= 8000, "{codec}: {} samples", samples.len());
            let hz = pitch(&samples, 8000.0);
            eprintln!(
                "{codec} over WHEP: {} samples, tone at {hz:.0} Hz",
                samples.len()
            );
            assert!((hz - 440.0).abs() < 15.0, "{codec}: tone at {hz:.1} Hz");
        });
        v.close().await;

        // A viewer that offers Opus only: video alone, the audio is left out.
        let mut opus_only = Viewer::connect(&whep_url(&server, &path), ViewerOptions::default())
            .await
            .expect("WHEP without G.711 still gets video");
        assert!(opus_only.wait_connected(Duration::from_secs(10)).await);
        opus_only.close().await;

        // ffprobe reads the codec back over RTSP, and ffmpeg decodes 3 s without an error.
        assert_reads_back(&rtsp_url(&server, &path), &format!("{codec},8000,1")).await;
        let _ = ff.kill().await;
    }
    server.shutdown();
}

/// Decodes raw G.722 with ffmpeg into 16 kHz samples.
async fn decode_g722(payload: &[u8]) -> Vec<i16> {
    let file = std::env::temp_dir().join(format!("hubcast-g722-{}.raw", std::process::id()));
    std::fs::write(&file, payload).expect("write");
    let file = file.to_string_lossy().to_string();
    let args = [
        "-v", "error", "-f", "g722", "-i", &file, "-f", "s16le", "-ac", "1", "-ar", "16000",
        "pipe:1",
    ];
    let out = ffmpeg_tool("ffmpeg", &args, Duration::from_secs(20)).await;
    let _ = std::fs::remove_file(&file);
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_from_a_camera_reaches_whep_and_rtsp_readers() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let mut ff = push_audio(&rtsp_url(&server, "cam"), "g722", "16000");
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    let opts = ViewerOptions {
        static_audio: true,
        ..Default::default()
    };
    let mut v = Viewer::connect(&whep_url(&server, "cam"), opts)
        .await
        .expect("WHEP with G.722 offered");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let payload = v.snapshot(|r| {
        assert_eq!(r.audio_pt, Some(9), "G.722's static payload type");
        assert!(r.aus.len() >= 30, "{} video frames", r.aus.len());
        r.audio_payload.clone()
    });
    v.close().await;
    // What the viewer received, decoded by ffmpeg: the same tone.
    let samples = decode_g722(&payload).await;
    assert!(samples.len() >= 16_000, "{} samples", samples.len());
    let hz = pitch(&samples[1600..], 16_000.0);
    eprintln!(
        "G.722 over WHEP: {} samples, tone at {hz:.0} Hz",
        samples.len()
    );
    assert!((hz - 440.0).abs() < 15.0, "tone at {hz:.1} Hz");

    assert_reads_back(&rtsp_url(&server, "cam"), "adpcm_g722,16000,1").await;
    let _ = ff.kill().await;
    server.shutdown();
}

/// ffprobe shows the path's video over RTSP as `codec,width,height`, and ffmpeg decodes 3 s
/// of it (`-c copy` would hide decoder errors) into at least `min_frames` frames without
/// an error.
async fn assert_video_reads_back(url: &str, video: &str, min_frames: usize) {
    let probed = probe(url, "v:0", "stream=codec_name,width,height").await;
    assert_eq!(probed, video, "ffprobe over RTSP");
    let out = decode_3s(url, &["-map", "0:v", "-f", "framecrc", "-"]).await;
    let errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(
        errors.is_empty(),
        "{video}: decode errors over RTSP: {errors}"
    );
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    eprintln!("{video} over RTSP: {frames} frames decoded in 3 s");
    assert!(frames >= min_frames, "{video}: {frames} frames decoded");
}

/// A camera or encoder pushing VP8 or VP9 over RTSP (ffmpeg with libvpx): RTSP readers get
/// the same codec and size back, decodable frame after frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_and_vp9_pushed_over_rtsp_read_back() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    for (codec, encoder, name) in [("vp8", "libvpx", "vp8"), ("vp9", "libvpx-vp9", "vp9")] {
        let path = format!("cam_{codec}");
        let encode = [
            "-c:v",
            encoder,
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "1M",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            // ffmpeg marks its VP9 RTP packetizer experimental.
            "-strict",
            "experimental",
        ];
        let mut ff = push_video(&rtsp_url(&server, &path), &encode);
        wait_stream(&server, &path, Duration::from_secs(15)).await;
        assert_video_reads_back(&rtsp_url(&server, &path), &format!("{name},640,360"), 60).await;
        let _ = ff.kill().await;
    }
    server.shutdown();
}

/// A camera's H.264 High with B-frames (x264 `-bf 2`): RTSP readers get it back as it is,
/// decodable without an error (reordered frames keep their presentation times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_with_b_frames_pushed_over_rtsp_reads_back() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let path = "cam_bframes";
    let encode = [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-bf",
        "2",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
    ];
    let mut ff = push_video(&rtsp_url(&server, path), &encode);
    wait_stream(&server, path, Duration::from_secs(15)).await;
    assert_video_reads_back(&rtsp_url(&server, path), "h264,640,360", 60).await;
    let _ = ff.kill().await;
    server.shutdown();
}

/// ffmpeg decodes 3 s of the path's audio over RTSP, and the tone is still 440 Hz.
async fn assert_tone_reads_back(url: &str, what: &str) {
    let out = decode_3s(
        url,
        &[
            "-map", "0:a", "-f", "s16le", "-ac", "1", "-ar", "16000", "pipe:1",
        ],
    )
    .await;
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(samples.len() >= 32_000, "{what}: {} samples", samples.len());
    let hz = pitch(&samples[1600..], 16_000.0);
    eprintln!(
        "{what} over RTSP: {} samples, tone at {hz:.0} Hz",
        samples.len()
    );
    assert!((hz - 440.0).abs() < 15.0, "{what}: tone at {hz:.1} Hz");
}

/// A camera's or encoder's AAC (as RFC 3640 and as LATM), L16 and MP3, pushed by ffmpeg over
/// RTSP: RTSP readers get the same codec, rate and channels back, and the same tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aac_l16_and_mp3_pushed_over_rtsp_read_back() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "aac_48k",
            &["-c:a", "aac", "-ar", "48000", "-ac", "2"],
            "aac,48000,2",
        ),
        (
            "aac_16k",
            &["-c:a", "aac", "-ar", "16000", "-ac", "1"],
            "aac,16000,1",
        ),
        (
            "aac_latm",
            &[
                "-c:a",
                "aac",
                "-ar",
                "44100",
                "-ac",
                "2",
                "-rtpflags",
                "latm",
            ],
            "aac,44100,2",
        ),
        (
            "l16",
            &["-c:a", "pcm_s16be", "-ar", "16000", "-ac", "1"],
            "pcm_s16be,16000,1",
        ),
        (
            "mp3",
            &["-c:a", "libmp3lame", "-ar", "44100", "-ac", "1"],
            "mp3,44100,1",
        ),
    ];
    for (path, audio, probed) in cases {
        let url = rtsp_url(&server, path);
        let mut ff = push_audio_with(&url, audio);
        wait_stream(&server, path, Duration::from_secs(15)).await;
        assert_reads_back(&url, probed).await;
        assert_tone_reads_back(&url, path).await;
        let _ = ff.kill().await;
    }
    server.shutdown();
}

/// A camera pushing H.265 over RTSP (ffmpeg with libx265, B-frames on as x265 has them):
/// RTSP readers get H.265 of the same size back, decodable frame after frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_pushed_over_rtsp_reads_back() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let path = "cam_h265";
    let mut ff = push_video(&rtsp_url(&server, path), &X265);
    wait_stream(&server, path, Duration::from_secs(15)).await;
    assert_video_reads_back(&rtsp_url(&server, path), "hevc,640,360", 60).await;
    let _ = ff.kill().await;
    server.shutdown();
}

/// A camera sending only a codec hubcast does not carry (ffmpeg's MPEG-2 video, `MPV`): the
/// ANNOUNCE is refused with 406, the server logs which media and why, and the next publisher
/// on the same path is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_with_only_unsupported_codecs_is_refused() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let url = rtsp_url(&server, "mpv");
    let args = [
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-t",
        "2",
        "-c:v",
        "mpeg2video",
        "-f",
        "rtsp",
        "-rtsp_transport",
        "tcp",
        &url,
    ];
    let run = Command::new("ffmpeg")
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("ffmpeg gives up in time")
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("ANNOUNCE failed: 406"),
        "{stderr}"
    );
    let mut ff = push_audio(&url, "pcm_mulaw", "8000");
    wait_stream(&server, "mpv", Duration::from_secs(15)).await;
    let _ = ff.kill().await;
    server.shutdown();
}
