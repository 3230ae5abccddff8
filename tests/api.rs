//! For engineers: pprof, Prometheus metrics, latency statistics, health and the control API,
//! against a live server with an ffmpeg publisher and real WHEP viewers.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use hubcast::config::{PathConf, RtspTransport};
use prost::Message;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

// Heap profiles need jemalloc with profiling compiled in (inactive until asked).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

async fn get(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(url).await.expect("GET");
    let s = r.status().as_u16();
    (s, r.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
}

async fn get_json(url: &str) -> (u16, Value) {
    let (s, b) = get(url).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn send_json(method: &str, url: &str, body: &str) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let r = reqwest::Client::new()
        .request(m, url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let s = r.status().as_u16();
    let body = r.bytes().await.unwrap_or_default();
    (s, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn strings(p: &pprof::protos::Profile) -> &[String] {
    &p.string_table
}

/// Parses /metrics with Python's prometheus_client (a real Prometheus text parser) and
/// returns {"name{labels}": value}.
async fn parse_metrics(text: &str) -> Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (apt-get install python3-prometheus-client)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("parser ran");
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

async fn metrics(server: &hubcast::Server) -> Value {
    let (s, body) = get(&format!(
        "http://{}/metrics",
        server.addrs.metrics.expect("metrics")
    ))
    .await;
    assert_eq!(s, 200);
    parse_metrics(&String::from_utf8_lossy(&body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_metrics_statistics_health_and_api_under_load() {
    let _heavy = HEAVY.lock().await;
    let dead = format!("rtsp://127.0.0.1:{}/cam", free_port());
    let server = start(test_config()).await;
    let api = format!("http://{}", server.addrs.api.expect("api"));
    let pprof = format!("http://{}", server.addrs.pprof.expect("pprof"));
    let ff = Ffmpeg::push(&rtsp_url(&server, "cam"), RtspTransport::Tcp, 30, false);
    wait_stream(&server, "cam", Duration::from_secs(15)).await;

    let viewers = connect_viewers(&whep_url(&server, "cam"), 10).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // pprof: a 2 s CPU profile while 10 viewers watch; a second one at the same time -> 409.
    let cpu = tokio::spawn({
        let url = format!("{pprof}/debug/pprof/profile?seconds=2");
        async move { get(&url).await }
    });
    // SIGPROF samples follow CPU time, and fan-out to 10 viewers costs little: keep the
    // API busy meanwhile so that hubcast's own code is surely sampled.
    let busy_api = tokio::spawn({
        let url = format!("{api}/v3/paths/list");
        async move {
            let until = std::time::Instant::now() + Duration::from_millis(2300);
            while std::time::Instant::now() < until {
                let _ = get(&url).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (busy, _) = get(&format!("{pprof}/debug/pprof/profile?seconds=1")).await;
    assert_eq!(busy, 409, "a concurrent CPU profile must be refused");
    let (s, body) = cpu.await.expect("profile task");
    let _ = busy_api.await;
    assert_eq!(s, 200);
    let profile = pprof::protos::Profile::decode(body.as_slice()).expect("pprof protobuf");
    assert!(!profile.sample.is_empty(), "no samples");
    assert!(
        strings(&profile).iter().any(|f| f.contains("hubcast")),
        "no hubcast function in the profile ({} samples): {:?}",
        profile.sample.len(),
        strings(&profile).iter().take(40).collect::<Vec<_>>()
    );
    let (s, heap) = get(&format!("{pprof}/debug/pprof/heap")).await;
    assert_eq!(s, 200);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(heap.as_slice())
        .read_to_end(&mut raw)
        .expect("gzip");
    let heap = pprof::protos::Profile::decode(raw.as_slice()).expect("heap protobuf");
    assert!(
        heap.sample_type.iter().any(|t| strings(&heap)
            .get(t.ty as usize)
            .is_some_and(|n| n == "inuse_space")),
        "no inuse_space sample type"
    );
    let (s, svg) = get(&format!("{pprof}/debug/pprof/flamegraph?seconds=1")).await;
    assert_eq!(s, 200);
    assert!(
        String::from_utf8_lossy(&svg).contains("<svg"),
        "flamegraph is not SVG"
    );
    for bad in ["0", "abc", "100000"] {
        let (s, _) = get(&format!("{pprof}/debug/pprof/profile?seconds={bad}")).await;
        assert_eq!(s, 400, "seconds={bad}");
    }

    // Metrics: readers 10, bytes out growing.
    let m1 = metrics(&server).await;
    assert_eq!(m1["hubcast_path_readers{path=cam}"], json!(10.0), "{m1}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m2 = metrics(&server).await;
    let out = |m: &Value| {
        m["hubcast_path_bytes_sent_total{path=cam}"]
            .as_f64()
            .unwrap_or(0.0)
    };
    assert!(out(&m2) > out(&m1), "bytes out did not grow");
    assert_eq!(
        m2["hubcast_sessions{protocol=webrtc,state=read}"],
        json!(10.0)
    );
    assert!(
        m2["hubcast_webrtc_srtp_profile_sessions{profile=AEAD_AES_128_GCM}"]
            .as_f64()
            .unwrap_or(0.0)
            >= 10.0,
        "{m2}"
    );
    assert!(
        m2["hubcast_process_resident_memory_bytes{}"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );

    // Latency statistics.
    let (s, p) = get_json(&format!("{api}/v3/metrics/performance?operation=whep_post")).await;
    assert_eq!(s, 200, "{p}");
    assert!(p["count"].as_u64().unwrap_or(0) >= 10, "{p}");
    let f = |k: &str| p[k].as_f64().unwrap_or(f64::NAN);
    assert!(
        f("p50_ms") <= f("p95_ms") && f("p95_ms") <= f("p99_ms") && f("p99_ms") <= f("max_ms"),
        "{p}"
    );
    let (s, p) = get_json(&format!(
        "{api}/v3/metrics/performance?operation=hub_fanout&window=60"
    ))
    .await;
    assert_eq!(s, 200);
    assert!(p["count"].as_u64().unwrap_or(0) > 0, "{p}");
    let (s, e) = get_json(&format!("{api}/v3/metrics/performance?operation=nope")).await;
    assert_eq!(s, 404);
    // A window too large for a Duration is a 400, not a panic.
    let (s, e2) = get_json(&format!("{api}/v3/metrics/performance?window=1e30")).await;
    assert_eq!(s, 400, "{e2}");
    assert!(e["error"].is_string());

    // Health with a good stream.
    let (s, h) = get_json(&format!("{api}/v3/health")).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("healthy")), "{h}");

    // API: the path and 10 sessions; kick one: that viewer sees the close and the list shrinks.
    let (s, paths) = get_json(&format!("{api}/v3/paths/list")).await;
    assert_eq!(s, 200);
    let cam = paths["items"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "cam"))
        .cloned()
        .expect("cam listed");
    assert_eq!(cam["ready"], json!(true));
    assert_eq!(cam["readers"].as_array().map(Vec::len), Some(10));
    assert_eq!(cam["source"]["type"], json!("rtspSession"));
    let (_, sessions) = get_json(&format!("{api}/v3/webrtcsessions/list")).await;
    assert_eq!(sessions["itemCount"], json!(10));
    let (_, page) = get_json(&format!(
        "{api}/v3/webrtcsessions/list?itemsPerPage=4&page=2"
    ))
    .await;
    assert_eq!(
        (
            page["pageCount"].clone(),
            page["items"].as_array().map(Vec::len)
        ),
        (json!(3), Some(2))
    );
    // A page past any multiplication: empty, not an overflow.
    let (s, page) = get_json(&format!(
        "{api}/v3/webrtcsessions/list?itemsPerPage=18446744073709551615&page=2"
    ))
    .await;
    assert_eq!(
        (s, page["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{page}"
    );
    let (_, rtsp) = get_json(&format!("{api}/v3/rtspsessions/list")).await;
    assert_eq!(rtsp["items"][0]["state"], json!("publish"));
    let (_, conns) = get_json(&format!("{api}/v3/rtspconns/list")).await;
    assert_eq!(conns["itemCount"], json!(1));

    // Which session is viewers[0]? The one whose remote address is its... we kick the first
    // listed and find the viewer that was hung up on.
    let id = sessions["items"][0]["id"].as_str().expect("id").to_string();
    let (s, _) = send_json("POST", &format!("{api}/v3/webrtcsessions/kick/{id}"), "").await;
    assert_eq!(s, 200);
    let kicked = wait_until(Duration::from_secs(3), || {
        viewers
            .iter()
            .any(|v| v.snapshot(|r| r.closed_by_server.is_some()))
    })
    .await;
    assert!(kicked, "no viewer saw its session closed");
    let (_, sessions) = get_json(&format!("{api}/v3/webrtcsessions/list")).await;
    assert_eq!(sessions["itemCount"], json!(9));
    let (s, e) = send_json("POST", &format!("{api}/v3/webrtcsessions/kick/{id}"), "").await;
    assert_eq!(s, 404, "{e}");
    let (s, _) = get_json(&format!("{api}/v3/paths/get/nope")).await;
    assert_eq!(s, 404);

    // Readers go to 0 as viewers leave.
    for v in &viewers {
        v.close().await;
    }
    let zero = wait_until(Duration::from_secs(5), || {
        server
            .paths
            .stream("cam")
            .is_ok_and(|h| h.reader_count() == 0)
    })
    .await;
    assert!(zero);
    let m3 = metrics(&server).await;
    assert_eq!(m3["hubcast_path_readers{path=cam}"], json!(0.0));

    // Config: bad patches name the field; a path added at run time can be published to;
    // deleting a path closes its publisher and readers.
    let (s, e) = send_json(
        "PATCH",
        &format!("{api}/v3/config/global/patch"),
        "{not json",
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = send_json(
        "PATCH",
        &format!("{api}/v3/config/global/patch"),
        r#"{"readTimeout": 12}"#,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("readTimeout")),
        "{e}"
    );
    let (s, e) = send_json(
        "PATCH",
        &format!("{api}/v3/config/global/patch"),
        r#"{"writeQueueSize": 256}"#,
    )
    .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(server.config().write_queue_size, 256);

    let (s, e) = send_json(
        "POST",
        &format!("{api}/v3/config/paths/add/dead"),
        &json!({"source": dead}).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let degraded = wait_until(Duration::from_secs(8), || {
        server
            .paths
            .source("dead")
            .is_some_and(|c| matches!(*c.state.borrow(), hubcast::sources::SourceState::Failed(_)))
    })
    .await;
    assert!(degraded);
    let (s, h) = get_json(&format!("{api}/v3/health")).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("degraded")), "{h}");
    assert!(h["issues"].to_string().contains("dead"), "{h}");
    let (s, _) = send_json("DELETE", &format!("{api}/v3/config/paths/delete/dead"), "").await;
    assert_eq!(s, 200);

    let mut v = Viewer::connect(&whep_url(&server, "cam"), ViewerOptions::default())
        .await
        .expect("WHEP");
    assert!(v.wait_connected(Duration::from_secs(10)).await);
    let (s, e) = send_json(
        "PATCH",
        &format!("{api}/v3/config/paths/patch/all_others"),
        r#"{"maxReaders": "many"}"#,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("maxReaders")),
        "{e}"
    );
    let (s, _) = send_json(
        "DELETE",
        &format!("{api}/v3/config/paths/delete/all_others"),
        "",
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        wait_until(Duration::from_secs(3), || server
            .paths
            .stream("cam")
            .is_err())
        .await,
        "deleting the path left its stream"
    );
    assert!(
        wait_until(Duration::from_secs(3), || v
            .snapshot(|r| r.closed_by_server.is_some()))
        .await,
        "its reader was not closed"
    );
    ff.stop().await;

    let mut p = RawPublisher::connect(server.addrs.rtsp.expect("rtsp")).await;
    let url = rtsp_url(&server, "fresh");
    assert!(
        p.start(&url, H264_SDP).await.is_err(),
        "an unconfigured path must be refused"
    );
    let (s, e) = send_json("POST", &format!("{api}/v3/config/paths/add/fresh"), "{}").await;
    assert_eq!(s, 200, "{e}");
    let mut p = RawPublisher::connect(server.addrs.rtsp.expect("rtsp")).await;
    p.start(&url, H264_SDP)
        .await
        .expect("publishing to the added path");
    let (_, conf) = get_json(&format!("{api}/v3/config/paths/list")).await;
    assert_eq!(conf["items"][0]["name"], json!("fresh"));
    server.shutdown();
    let _ = PathConf::default();
}

/// curl's HTTP status for a request made with these arguments.
async fn curl_status(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(&args)
            .output()
    })
    .await
    .expect("curl task")
    .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// What a web page open on the server host could send to the loopback-trusted API is
/// refused (a form post, a foreign Origin, a rebound host name); curl, with its usual
/// flags, still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_browser_cross_site_requests_and_serves_curl() {
    let _heavy = HEAVY.lock().await;
    let server = start(test_config()).await;
    let api = server.addrs.api.expect("api");
    let add = |name: &str| format!("http://{api}/v3/config/paths/add/{name}");
    let json = "Content-Type: application/json";
    let post_json = ["-X", "POST", "-H", json, "-d", "{}"];
    let (a, b, c) = (add("a"), add("b"), add("c"));
    assert_eq!(
        curl_status(&[&post_json[..], &[&a]].concat()).await,
        "200",
        "JSON body"
    );
    let delete = format!("http://{api}/v3/config/paths/delete/a");
    assert_eq!(
        curl_status(&["-X", "DELETE", &delete]).await,
        "200",
        "no body"
    );
    // A form post (what a page can send without a CORS preflight).
    assert_eq!(curl_status(&["-d", "{}", &b]).await, "415");
    // A foreign Origin on a write.
    let evil = ["-H", "Origin: http://evil.example"];
    assert_eq!(
        curl_status(&[&post_json[..], &evil, &[&c]].concat()).await,
        "403"
    );
    // DNS rebinding: the page's own name, resolved to 127.0.0.1.
    let host = format!("Host: rebind.evil.example:{}", api.port());
    let list = format!("http://{api}/v3/paths/list");
    assert_eq!(curl_status(&["-H", &host, &list]).await, "403");
    // Credentials that authorize nothing (the loopback rule did) do not make it safe: a
    // page can send any Authorization header.
    for junk in [
        "Authorization: x",
        "Authorization: Basic Og==",
        "Authorization: Basic Ym9iOng=",
    ] {
        assert_eq!(
            curl_status(&["-H", &host, "-H", junk, &list]).await,
            "403",
            "{junk}"
        );
    }
    let local = format!("http://localhost:{}/v3/paths/list", api.port());
    assert_eq!(curl_status(&[&local]).await, "200");
    let (_, conf) = get_json(&format!("http://{api}/v3/config/paths/list")).await;
    let names: Vec<&str> = conf["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(!names.iter().any(|n| ["b", "c"].contains(n)), "{names:?}");
    server.shutdown();
}
