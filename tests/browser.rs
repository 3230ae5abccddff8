//! Headless Chromium end to end (scripts/browser-e2e.mjs with playwright-core): a browser
//! publishes via WHIP and another plays via WHEP, RTSP-pushed paths play in the browser,
//! instant join on a long GOP, and republishing without a reload.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use hubcast::config::{RtspTransport, SrtpProfile};
use tokio::process::Command;

/// Runs one scenario; returns its JSON line. Fails the test with the driver's message.
async fn scenario(server: &hubcast::Server, args: &[&str]) -> serde_json::Value {
    let base = format!("http://{}", server.addrs.webrtc_http.expect("http"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/browser-e2e.mjs");
    let out = tokio::time::timeout(
        Duration::from_secs(150),
        Command::new("node")
            .arg(script)
            .args(["--base", &base, "--pages", "server"])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("browser scenario finished in time")
    .expect("node runs (the test command installs chromium and playwright-core)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scenario {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    eprintln!("{line}");
    serde_json::from_str(line).expect("JSON")
}

fn cipher(v: &serde_json::Value, side: &str) -> String {
    v[side]["srtpCipher"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_publishes_whip_and_browser_plays_whep() {
    let _heavy = HEAVY.lock().await;
    // Default profiles: Chromium lists AES-CM first, hubcast's order gives AES-GCM.
    let server = start(test_config()).await;
    let r = scenario(
        &server,
        &[
            "--scenario",
            "whip-whep",
            "--path",
            "cam",
            "--expect-cipher",
            "gcm",
        ],
    )
    .await;
    eprintln!(
        "default profiles: publisher {} reader {}, WHEP POST -> first frame {} ms",
        cipher(&r, "publisher"),
        cipher(&r, "reader"),
        r["firstFrameMs"]
    );
    assert!(
        cipher(&r, "publisher").contains("GCM") && cipher(&r, "reader").contains("GCM"),
        "{r}"
    );
    server.shutdown();

    // AES-CM only: the fallback still works with a browser on both sides.
    let config = hubcast::Config {
        webrtc_srtp_profiles: vec![SrtpProfile::AesCm128HmacSha1_80],
        ..test_config()
    };
    let server = start(config).await;
    let r = scenario(&server, &["--scenario", "whip-whep", "--path", "cam"]).await;
    assert!(
        cipher(&r, "publisher").contains("CM_HMAC") && cipher(&r, "reader").contains("CM_HMAC"),
        "{r}"
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_plays_rtsp_push_and_joins_a_long_gop_at_once() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;
    scenario(&server, &["--scenario", "play-only", "--path", "cam"]).await;
    ff.stop().await;

    // A 5 s GOP, joined mid-GOP: the GOP cache gives the first frame at once.
    let ff = Ffmpeg::push(&rtsp_url(&server, "long"), RtspTransport::Tcp, 150, false);
    wait_stream(&server, "long", Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = scenario(
        &server,
        &[
            "--scenario",
            "play-only",
            "--path",
            "long",
            "--max-first-frame-ms",
            "1500",
        ],
    )
    .await;
    eprintln!(
        "long GOP: WHEP POST -> first decoded frame {} ms",
        r["firstFrameMs"]
    );
    ff.stop().await;
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_reader_survives_a_republish_without_reload() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    scenario(&server, &["--scenario", "republish", "--path", "cam"]).await;
    server.shutdown();
}

/// Chromium publishes each codec it encodes (setCodecPreferences on the publisher page),
/// and another Chromium page plays it via WHEP: frames decoded in that codec, no loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_publishes_and_plays_vp8_vp9_and_av1() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    for codec in ["VP8", "VP9", "AV1"] {
        let path = codec.to_ascii_lowercase();
        let r = scenario(
            &server,
            &[
                "--scenario",
                "whip-whep",
                "--path",
                &path,
                "--video-codec",
                codec,
            ],
        )
        .await;
        let want = format!("video/{codec}");
        assert_eq!(r["publisher"]["video"]["codec"], want.as_str(), "{r}");
        assert_eq!(r["reader"]["video"]["codec"], want.as_str(), "{r}");
        assert_eq!(r["reader"]["video"]["packetsLost"], 0, "{r}");
        assert!(
            r["reader"]["video"]["framesDecoded"].as_u64() >= Some(60),
            "{r}"
        );
        eprintln!(
            "{codec}: {}x{} decoded, first frame {} ms after WHEP POST",
            r["reader"]["video"]["width"], r["reader"]["video"]["height"], r["firstFrameMs"]
        );
    }
    server.shutdown();
}

/// Chromium publishing G.711 (µ-law, A-law) or G.722 audio over WHIP, as phones and SIP
/// gateways do (only that codec offered, through `setCodecPreferences`), and Chromium
/// playing it back over WHEP: the same codec arrives and is decoded, with no loss and little
/// concealment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_publishes_and_plays_g711_and_g722() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    for codec in ["PCMU", "PCMA", "G722"] {
        let path = codec.to_ascii_lowercase();
        let args = [
            "--scenario",
            "whip-whep",
            "--path",
            &path,
            "--audio-codec",
            codec,
        ];
        let r = scenario(&server, &args).await;
        let want = format!("audio/{codec}");
        assert_eq!(r["publisher"]["audio"]["codec"], want.as_str(), "{r}");
        let audio = &r["reader"]["audio"];
        assert_eq!(audio["codec"], want.as_str(), "{r}");
        assert_eq!(audio["packetsLost"], 0, "{r}");
        let samples = audio["totalSamplesReceived"].as_f64().unwrap_or(0.0);
        let concealed = audio["concealedSamples"].as_f64().unwrap_or(f64::MAX);
        assert!(samples > 8000.0, "{codec}: {samples} samples decoded: {r}");
        assert!(
            concealed < 0.2 * samples,
            "{codec}: {concealed} of {samples} concealed"
        );
        eprintln!("{codec}: {samples} samples decoded, {concealed} concealed");
    }
    server.shutdown();
}
