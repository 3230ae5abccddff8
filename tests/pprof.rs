//! `/debug/pprof/` end to end: the router served in-process on 127.0.0.1:0, real CPU and heap
//! profiles decoded with prost.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Heap profiling needs jemalloc's `prof:true` from process start, like the hubcast binary.
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, hubcast::pprof::router())
            .await
            .expect("pprof server");
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client")
}

/// Unmangled so its name is exactly `hubcast_test_burn` in the profile: this test crate is
/// itself called `pprof`, so a mangled path would start with `pprof::` and be filtered out
/// together with the profiler's own frames.
#[no_mangle]
#[inline(never)]
pub extern "C" fn hubcast_test_burn(stop: &AtomicBool) -> u64 {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        x = std::hint::black_box(x);
    }
    x
}

/// Burns one core until dropped.
struct Burner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Burner {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("hubcast-burn".into())
            .spawn(move || hubcast_test_burn(&flag))
            .expect("spawn burner");
        Burner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn string(p: &pprof::protos::Profile, index: i64) -> &str {
    usize::try_from(index)
        .ok()
        .and_then(|i| p.string_table.get(i))
        .map_or("", String::as_str)
}

fn function_names(p: &pprof::protos::Profile) -> Vec<&str> {
    p.function.iter().map(|f| string(p, f.name)).collect()
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_profile_busy_and_flamegraph() {
    let base = serve().await;
    let http = client();
    let _burn = Burner::start();

    let first = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/debug/pprof/profile?seconds=2");
        async move { http.get(url).send().await }
    });
    // Let the first capture take the slot, then both kinds of capture must be refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for path in ["profile?seconds=1", "flamegraph?seconds=1"] {
        let resp = http
            .get(format!("{base}/debug/pprof/{path}"))
            .send()
            .await
            .expect("concurrent request");
        assert_eq!(resp.status(), 409, "{path}");
        let reason = resp.text().await.expect("body");
        assert!(reason.contains("already"), "{reason}");
    }

    let resp = first.await.expect("join").expect("profile request");
    assert_eq!(resp.status(), 200);
    assert_eq!(content_type(&resp), "application/octet-stream");
    let disposition = resp
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(disposition, "attachment; filename=\"profile\"");
    let body = resp.bytes().await.expect("profile body");
    let profile = pprof::protos::Profile::decode(&body[..]).expect("pprof protobuf");
    let names = function_names(&profile);
    let sampled: i64 = profile.sample.iter().filter_map(|s| s.value.first()).sum();
    eprintln!(
        "2 s CPU profile: {} bytes, {} distinct stacks, {sampled} samples, {} functions",
        body.len(),
        profile.sample.len(),
        names.len()
    );
    eprintln!("functions: {names:?}");
    assert!(!profile.sample.is_empty(), "no samples");
    assert!(
        names.iter().any(|n| n.contains("hubcast")),
        "no hubcast function in {names:?}"
    );
    let profiler_frames = names
        .iter()
        .filter(|n| n.starts_with("pprof::") || n.starts_with("backtrace::"))
        .count();
    assert_eq!(profiler_frames, 0, "profiler frames left: {names:?}");

    // The slot is free again once a capture finished.
    let resp = http
        .get(format!("{base}/debug/pprof/flamegraph?seconds=1"))
        .send()
        .await
        .expect("flamegraph request");
    assert_eq!(resp.status(), 200);
    assert_eq!(content_type(&resp), "image/svg+xml");
    let svg = resp.text().await.expect("svg body");
    eprintln!("1 s flamegraph: {} bytes", svg.len());
    assert!(svg.starts_with("<?xml") || svg.contains("<svg"), "not SVG");
    assert!(
        svg.contains("hubcast_test_burn"),
        "burner missing from flamegraph"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_profile_has_inuse_space() {
    let base = serve().await;
    let http = client();

    let resp = http
        .get(format!("{base}/debug/pprof/heap?activate=1"))
        .send()
        .await
        .expect("activate");
    assert_eq!(resp.status(), 204);

    // Allocated after activation and alive during the dump, so the sampler sees them
    // (one sample per 512 KiB on average).
    let held: Vec<Vec<u8>> = (0..32)
        .map(|i| std::hint::black_box(vec![i as u8; 1 << 20]))
        .collect();

    for path in ["heap", "allocs"] {
        let resp = http
            .get(format!("{base}/debug/pprof/{path}"))
            .send()
            .await
            .expect("heap request");
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(content_type(&resp), "application/octet-stream");
        let gz = resp.bytes().await.expect("heap body");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .expect("gzip");
        let profile = pprof::protos::Profile::decode(&raw[..]).expect("pprof protobuf");
        let types: Vec<&str> = profile
            .sample_type
            .iter()
            .map(|t| string(&profile, t.ty))
            .collect();
        let inuse_index = types.iter().position(|t| *t == "inuse_space");
        let inuse_bytes: i64 = profile
            .sample
            .iter()
            .filter_map(|s| s.value.get(inuse_index?))
            .sum();
        eprintln!(
            "{path}: {} bytes gzipped, {} bytes raw, {} stacks, {inuse_bytes} bytes in use, \
             sample types {types:?}",
            gz.len(),
            raw.len(),
            profile.sample.len()
        );
        assert!(inuse_index.is_some(), "{types:?}");
        // 32 x 1 MiB held: each is sampled with p ~ 0.86 at one sample per 512 KiB, so well
        // over 8 MiB must show up.
        assert!(inuse_bytes >= 8 << 20, "only {inuse_bytes} bytes in use");
    }
    drop(held);
}

#[tokio::test]
async fn bad_seconds_are_rejected() {
    let base = serve().await;
    let http = client();
    for endpoint in ["profile", "flamegraph"] {
        for bad in ["0", "abc", "100000", "", "-3", "2.5"] {
            let resp = http
                .get(format!("{base}/debug/pprof/{endpoint}?seconds={bad}"))
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status(), 400, "{endpoint} seconds={bad}");
            let reason = resp.text().await.expect("body");
            assert!(reason.contains("seconds"), "{reason}");
        }
    }
    let resp = http
        .get(format!("{base}/debug/pprof/heap?activate=maybe"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn index_lists_endpoints() {
    let base = serve().await;
    let http = client();
    for path in ["/debug/pprof/", "/debug/pprof"] {
        let resp = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("index");
        assert_eq!(resp.status(), 200);
        assert!(content_type(&resp).starts_with("text/html"));
        let html = resp.text().await.expect("html");
        for needle in ["profile?seconds=", "flamegraph", "heap", "go tool pprof"] {
            assert!(html.contains(needle), "index lacks {needle}");
        }
    }
}
