//! Who may do what: internal users (Basic, Digest with ffmpeg), the HTTP hook, JWT with a
//! JWKS, admin endpoints by source address, and slowing password guessers.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use base64::Engine;
use common::*;
use hubcast::config::RtspTransport;
use serde_json::{json, Value};

const CHROMIUM_WHIP: &str = include_str!("data/chromium-whip-offer.sdp");
const LISTENERS: &str = "rtspAddress: 127.0.0.1:0\nrtpAddress: 127.0.0.1:0\nrtcpAddress: 127.0.0.1:0\nwebrtcAddress: 127.0.0.1:0\nwebrtcLocalUDPAddress: 127.0.0.1:0\napiAddress: 127.0.0.1:0\nmetricsAddress: 127.0.0.1:0\npprofAddress: 127.0.0.1:0\n";

fn config(yaml: &str) -> hubcast::Config {
    hubcast::Config::from_yaml_str(&format!("{LISTENERS}{yaml}")).expect("test config")
}

/// ffmpeg publishing path `live` as user `pub` (password `secret`), once the path is up.
async fn push_live(server: &hubcast::Server) -> Ffmpeg {
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let live = Ffmpeg::push(
        &format!("rtsp://pub:secret@{rtsp}/live"),
        RtspTransport::Tcp,
        30,
        false,
    );
    wait_stream(server, "live", Duration::from_secs(15)).await;
    live
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// POSTs a WHIP offer with an optional Authorization header, from `from` (a local address).
async fn whip(
    server: &hubcast::Server,
    path: &str,
    authorization: Option<&str>,
    from: &str,
) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .local_address(Some(from.parse().expect("ip")))
        .build()
        .expect("client");
    let mut r = client
        .post(format!(
            "http://{}/{path}/whip",
            server.addrs.webrtc_http.expect("http")
        ))
        .header("Content-Type", "application/sdp")
        .body(CHROMIUM_WHIP);
    if let Some(a) = authorization {
        r = r.header("Authorization", a);
    }
    let resp = r.send().await.expect("POST");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (resp.status().as_u16(), challenge)
}

async fn api_status(server: &hubcast::Server, from: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(Some(from.parse().expect("ip")))
        .build()
        .expect("client");
    let url = format!("http://{}/v3/paths/list", server.addrs.api.expect("api"));
    client.get(url).send().await.expect("GET").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_users_basic_digest_admin_ips_and_slowdown() {
    let _heavy = HEAVY.lock().await;
    let server = start(config(
        "authInternalUsers:\n\
         - user: pub\n  pass: secret\n  permissions: [{action: publish}, {action: read}]\n\
         - user: viewer\n  pass: view\n  permissions: [{action: read}]\n\
         - user: any\n  ips: ['127.0.0.1', '::1']\n  permissions: [{action: api}, {action: metrics}, {action: pprof}]\n",
    ))
    .await;

    // A healthy viewer (with credentials) watches while everything below hits the server.
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let live = push_live(&server).await;
    let opts = ViewerOptions {
        authorization: Some(basic("viewer", "view")),
        ..Default::default()
    };
    let mut healthy = Viewer::connect(&whep_url(&server, "live"), opts)
        .await
        .expect("viewer with credentials");
    assert!(healthy.wait_connected(Duration::from_secs(10)).await);
    let (s, _, _) = post_sdp(
        &whep_url(&server, "live"),
        include_str!("data/chromium-whep-offer.sdp"),
    )
    .await;
    assert_eq!(s, 401, "WHEP without credentials");

    let (s, challenge) = whip(&server, "cam", None, "127.0.0.1").await;
    assert_eq!(s, 401, "unauthenticated WHIP");
    assert!(
        challenge.is_some_and(|c| c.starts_with("Basic")),
        "401 without WWW-Authenticate"
    );
    assert_eq!(
        whip(&server, "cam", Some(&basic("viewer", "view")), "127.0.0.1")
            .await
            .0,
        401,
        "a read-only user published"
    );
    assert_eq!(
        whip(&server, "cam", Some(&basic("pub", "secret")), "127.0.0.1")
            .await
            .0,
        201,
        "the right user"
    );
    assert_eq!(
        whip(&server, "cam2", Some("Bearer pub:secret"), "127.0.0.1")
            .await
            .0,
        201,
        "OBS-style Bearer user:pass"
    );

    // RTSP: ANNOUNCE without credentials -> 401 with a Digest challenge; ffmpeg then pushes
    // with Digest.
    let mut p = RawPublisher::connect(rtsp).await;
    let err = p
        .start(&format!("rtsp://{rtsp}/cam3"), H264_SDP)
        .await
        .expect_err("refused");
    assert!(
        err.starts_with("RTSP/1.0 401") && err.contains("WWW-Authenticate: Digest"),
        "{err}"
    );
    let ff = Ffmpeg::push(
        &format!("rtsp://pub:secret@{rtsp}/cam3"),
        RtspTransport::Tcp,
        30,
        false,
    );
    wait_stream(&server, "cam3", Duration::from_secs(15)).await;
    ff.stop().await;

    // Admin endpoints: only from 127.0.0.1.
    assert_eq!(api_status(&server, "127.0.0.1").await, 200);
    assert_eq!(
        api_status(&server, "127.0.0.2").await,
        401,
        "API from a non-allowed IP"
    );

    // Password guessing from one address is slowed; another address is not.
    for _ in 0..5 {
        whip(&server, "cam4", Some(&basic("pub", "guess")), "127.0.0.3").await;
    }
    let t = Instant::now();
    assert_eq!(
        whip(&server, "cam4", Some(&basic("pub", "guess")), "127.0.0.3")
            .await
            .0,
        401
    );
    let slowed = t.elapsed();
    let t = Instant::now();
    assert_eq!(
        whip(
            &server,
            "cam4",
            Some(&basic("viewer", "wrong")),
            "127.0.0.4"
        )
        .await
        .0,
        401
    );
    let other = t.elapsed();
    // The account under attack is braked from any address: a guesser cannot rotate IPs.
    let t = Instant::now();
    assert_eq!(
        whip(&server, "cam4", Some(&basic("pub", "guess")), "127.0.0.5")
            .await
            .0,
        401
    );
    let same_user = t.elapsed();
    eprintln!(
        "6th failure from one IP answered after {slowed:?}; another IP and user after {other:?}; the same user from a new IP after {same_user:?}"
    );
    assert!(
        slowed >= Duration::from_millis(1900),
        "not slowed: {slowed:?}"
    );
    assert!(
        other < Duration::from_secs(1),
        "another client was slowed: {other:?}"
    );
    assert!(
        same_user >= Duration::from_millis(1900),
        "guesses on one user from a new address were not slowed: {same_user:?}"
    );

    let before = healthy.snapshot(|r| r.aus.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    healthy.snapshot(|r| {
        assert_eq!(r.seq_gaps, 0, "the healthy viewer saw gaps");
        assert!(r.aus.len() >= before + 20, "the healthy viewer stalled");
    });
    healthy.close().await;
    live.stop().await;
    server.shutdown();
}

/// A tiny HTTP server for the auth hook and the JWKS.
async fn serve(app: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_hook_gets_the_fields_and_decides() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = Arc::clone(&seen);
    let hook = serve(axum::Router::new().route(
        "/auth",
        post(move |axum::Json(body): axum::Json<Value>| {
            let s = Arc::clone(&s);
            async move {
                let ok = body["user"] == "good";
                s.lock().expect("lock").push(body);
                if ok {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::FORBIDDEN
                }
            }
        }),
    ))
    .await;
    let server = start(config(&format!(
        "authMethod: http\nauthHTTPAddress: http://{hook}/auth\n"
    )))
    .await;
    assert_eq!(
        whip(&server, "cam", Some(&basic("good", "pw")), "127.0.0.1")
            .await
            .0,
        201
    );
    assert_eq!(
        whip(&server, "cam2", Some(&basic("bad", "pw")), "127.0.0.1")
            .await
            .0,
        401,
        "the hook's 403 must refuse"
    );
    let bodies = seen.lock().expect("lock").clone();
    let first = bodies.first().cloned().expect("the hook was called");
    for field in [
        "user", "password", "ip", "action", "path", "protocol", "id", "query",
    ] {
        assert!(
            first.get(field).is_some(),
            "hook body lacks {field}: {first}"
        );
    }
    assert_eq!(
        (first["user"].clone(), first["password"].clone()),
        (json!("good"), json!("pw"))
    );
    assert_eq!(
        (first["action"].clone(), first["path"].clone()),
        (json!("publish"), json!("cam"))
    );
    assert_eq!(first["ip"], json!("127.0.0.1"));
    server.shutdown();
}

const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbMKI0C0mtu2UKpzx
M5c5dI0YU1o4rhf5Hm5EV98g1IShRANCAASQskhuQUc+AawNWewyzs15jHXEe0vv
YjKyO6hTF2stYQwwLRoz/ScXj4T4gnDfJNaXyx1c1Vk7xGPOJTFYzALq
-----END PRIVATE KEY-----
";
const EC_X: &str = "kLJIbkFHPgGsDVnsMs7NeYx1xHtL72IysjuoUxdrLWE";
const EC_Y: &str = "DDAtGjP9JxePhPiCcN8k1pfLHVzVWTvEY84lMVjMAuo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_from_a_jwks_is_accepted_and_a_tampered_one_refused() {
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "x": EC_X, "y": EC_Y}]});
    // Once set, the JWKS server answers only after 30 s (the fetch times out after 5 s).
    let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stalled = Arc::clone(&stall);
    let keys = serve(axum::Router::new().route(
        "/jwks",
        get(move || {
            let stalled = Arc::clone(&stalled);
            let jwks = jwks.clone();
            async move {
                if stalled.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                axum::Json(jwks)
            }
        }),
    ))
    .await;
    let server = start(config(&format!(
        "authMethod: jwt\nauthJWTJWKS: http://{keys}/jwks\n"
    )))
    .await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let claims = json!({
        "exp": jsonwebtoken::get_current_timestamp() + 600,
        "mediamtx_permissions": [{"action": "publish", "path": "cam"}],
    });
    let key = jsonwebtoken::EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("key");
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("token");
    assert_eq!(
        whip(
            &server,
            "cam",
            Some(&format!("Bearer {token}")),
            "127.0.0.1"
        )
        .await
        .0,
        201,
        "signed token"
    );
    assert_eq!(
        whip(
            &server,
            "other",
            Some(&format!("Bearer {token}")),
            "127.0.0.1"
        )
        .await
        .0,
        401,
        "path not granted"
    );
    // Flip one character of the signature.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_eq!(
        whip(
            &server,
            "cam2",
            Some(&format!("Bearer {tampered}")),
            "127.0.0.1"
        )
        .await
        .0,
        401,
        "tampered token"
    );
    assert_eq!(
        whip(&server, "cam2", None, "127.0.0.1").await.0,
        401,
        "no token"
    );

    // A token naming an unknown key makes us refetch (at most every 10 s); while that
    // fetch hangs, tokens the cached keys verify are still answered at once.
    tokio::time::sleep(Duration::from_secs(10)).await;
    stall.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut unknown = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    unknown.kid = Some("k9".into());
    let unknown = jsonwebtoken::encode(&unknown, &claims, &key).expect("token");
    let server = Arc::new(server);
    let refetching = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            whip(
                &server,
                "cam4",
                Some(&format!("Bearer {unknown}")),
                "127.0.0.1",
            )
            .await
            .0
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = tokio::time::timeout(
        Duration::from_secs(3),
        whip(
            &server,
            "cam",
            Some(&format!("Bearer {token}")),
            "127.0.0.2",
        ),
    )
    .await;
    assert_eq!(
        during.map(|r| r.0).ok(),
        Some(201),
        "a valid token waited for the stalled JWKS fetch"
    );
    assert_eq!(refetching.await.expect("task"), 401, "unknown key");
    server.shutdown();
}

/// Sends an API request with optional Basic credentials; returns the status and body.
async fn api_call(
    server: &hubcast::Server,
    method: &str,
    path: &str,
    body: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let url = format!("http://{}{path}", server.addrs.api.expect("api"));
    let mut r = reqwest::Client::new()
        .request(m, url)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(a) = authorization {
        r = r.header("Authorization", a);
    }
    let resp = r.send().await.expect("API request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Auth holds: no WHIP or API read without credentials, and WHIP with them works.
async fn locked(server: &hubcast::Server, when: &str) {
    let (s, _) = whip(server, "cam", None, "127.0.0.1").await;
    assert_eq!(s, 401, "unauthenticated WHIP {when}");
    let (s, _) = api_call(server, "GET", "/v3/paths/list", "", None).await;
    assert_eq!(s, 401, "unauthenticated API read {when}");
    let fresh = format!("p{}", next_id());
    let (s, _) = whip(server, &fresh, Some(&basic("pub", "secret")), "127.0.0.1").await;
    assert_eq!(s, 201, "WHIP with credentials {when}");
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Every `/v3/config` write, done by an admin with auth on, leaves auth in force: the API
/// neither shows nor takes `auth*` keys, and rebuilding the configuration from what it shows
/// used to fall back to the open defaults (an unauthenticated WHIP then got 201).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_config_write_through_the_api_weakens_auth() {
    let _heavy = HEAVY.lock().await;
    let server = start(config(
        "authInternalUsers:\n\
         - user: admin\n  pass: adminpass\n  permissions: [{action: api}]\n\
         - user: pub\n  pass: secret\n  permissions: [{action: publish}, {action: read}]\n\
         paths:\n  cam:\n  all_others:\n",
    ))
    .await;
    let admin = basic("admin", "adminpass");
    let admin = Some(admin.as_str());
    locked(&server, "at start").await;
    // Addressed by a name from this host (a reverse proxy, a rebinding page): a named
    // user's credentials are what authorize it, so it is served; wrong ones are not.
    let api = server.addrs.api.expect("api");
    let by_name = |auth: &str| {
        reqwest::Client::new()
            .get(format!("http://{api}/v3/paths/list"))
            .header("Host", format!("media.example.com:{}", api.port()))
            .header("Authorization", auth.to_string())
            .send()
    };
    let ok = by_name(&basic("admin", "adminpass")).await.expect("GET");
    assert_eq!(ok.status().as_u16(), 200, "the admin by name");
    let wrong = by_name(&basic("admin", "nope")).await.expect("GET");
    assert_eq!(wrong.status().as_u16(), 401, "a wrong password by name");

    let writes: [(&str, &str, &str); 6] = [
        ("PATCH", "/v3/config/global/patch", r#"{"logLevel":"info"}"#),
        ("POST", "/v3/config/paths/add/extra", r#"{"maxReaders":3}"#),
        (
            "PATCH",
            "/v3/config/paths/patch/extra",
            r#"{"maxReaders":4}"#,
        ),
        (
            "PATCH",
            "/v3/config/paths/patch/cam",
            r#"{"overridePublisher":true}"#,
        ),
        ("DELETE", "/v3/config/paths/delete/extra", ""),
        (
            "PATCH",
            "/v3/config/paths/patch/all_others",
            r#"{"maxReaders":0}"#,
        ),
    ];
    for (method, path, body) in writes {
        // Without credentials the write itself is refused and changes nothing.
        let (s, _) = api_call(&server, method, path, body, None).await;
        assert_eq!(s, 401, "{method} {path} without credentials");
        let (s, text) = api_call(&server, method, path, body, admin).await;
        assert_eq!(s, 200, "{method} {path} as admin: {text}");
        locked(&server, &format!("after {method} {path}")).await;
    }

    // The API does not take auth keys: a clear 400, and auth is as it was.
    for body in [
        r#"{"authMethod":"http","authHTTPAddress":"http://127.0.0.1:1/"}"#,
        r#"{"authInternalUsers":[{"user":"any","permissions":[{"action":"publish"}]}]}"#,
    ] {
        let (s, text) = api_call(&server, "PATCH", "/v3/config/global/patch", body, admin).await;
        assert_eq!(s, 400, "{body}: {text}");
        assert!(text.contains("config file only"), "{text}");
    }
    locked(&server, "after refused auth patches").await;
    let (_, shown) = api_call(&server, "GET", "/v3/config/global/get", "", admin).await;
    assert!(
        !shown.contains("adminpass") && !shown.contains("authInternalUsers"),
        "{shown}"
    );
    server.shutdown();
}

fn argon2_phc(pass: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"hubcast-test-salt").expect("salt");
    // The crate's default cost (19 MiB, 2 passes): tens of ms per check, as in production.
    argon2::Argon2::default()
        .hash_password(pass.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// A flood of guesses against an Argon2 password: a bounded number of hash checks run at
/// once and a bounded number wait; the rest get 503 at once. The right password still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argon2_checks_are_bounded_and_excess_gets_503() {
    let _heavy = HEAVY.lock().await;
    let phc = argon2_phc("right");
    let server = start(config(&format!(
        "authInternalUsers:\n\
         - user: cam\n  pass: 'argon2:{phc}'\n  permissions: [{{action: publish}}]\n"
    )))
    .await;
    let server = Arc::new(server);
    let wrong = basic("cam", "wrong");
    let mut tasks = Vec::new();
    for i in 0..120 {
        let server = Arc::clone(&server);
        let wrong = wrong.clone();
        tasks.push(tokio::spawn(async move {
            whip(&server, &format!("g{i}"), Some(&wrong), "127.0.0.1")
                .await
                .0
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.expect("task")).or_insert(0) += 1;
    }
    eprintln!("120 concurrent wrong passwords: {statuses:?}");
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.get(&401).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(
        statuses.keys().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    let (s, _) = whip(&server, "good", Some(&basic("cam", "right")), "127.0.0.2").await;
    assert_eq!(s, 201, "the right password after the flood");

    // Clients that hang up while their check waits give their place back: 3 x 100 of
    // them used to leave the queue counted full for good (every later login got 503).
    let http = server.addrs.webrtc_http.expect("http");
    for round in 0..3 {
        let mut conns = Vec::new();
        for i in 0..100 {
            let mut c = tokio::net::TcpStream::connect(http).await.expect("connect");
            let req = format!(
                "POST /h{round}x{i}/whip HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
            );
            tokio::io::AsyncWriteExt::write_all(&mut c, req.as_bytes())
                .await
                .expect("write");
            conns.push(c);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(conns);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (s, body) = whip(&server, "again", Some(&basic("cam", "right")), "127.0.0.3").await;
    assert_eq!(s, 201, "the right password after 100 hang-ups: {body:?}");
}

/// A user removed by a configuration reload is refused on the next request of an RTSP
/// connection it already used (the connection used to remember the old verdict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_a_user_refuses_its_open_rtsp_connection() {
    let _heavy = HEAVY.lock().await;
    let users = |reader: &str| {
        config(&format!(
            "authInternalUsers:\n\
             - user: pub\n  pass: secret\n  permissions: [{{action: publish}}]\n\
             - user: {reader}\n  pass: view\n  permissions: [{{action: read}}]\n"
        ))
    };
    let server = start(users("viewer")).await;
    let rtsp = server.addrs.rtsp.expect("rtsp");
    let live = push_live(&server).await;
    let url = format!("rtsp://{rtsp}/live");
    let creds = basic("viewer", "view");
    let mut client = RawPublisher::connect(rtsp).await;
    let (s, _) = client
        .request("DESCRIBE", &url, &[("Authorization", &creds)], "")
        .await;
    assert_eq!(s, 200, "the reader before the reload");
    server.paths.apply_config(Arc::new(users("someone_else")));
    let (s, _) = client
        .request("DESCRIBE", &url, &[("Authorization", &creds)], "")
        .await;
    assert_eq!(s, 401, "the removed user on the same connection");
    live.stop().await;
    server.shutdown();
}
