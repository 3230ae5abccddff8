//! Tests of [`Auth`] through its public API: the three methods end to end.

use std::fmt::Debug;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::*;
use crate::config::{AuthAction, AuthUser, Permission};

fn ok<T, E: Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e:?}"),
    }
}

fn ip(text: &str) -> IpAddr {
    ok(text.parse())
}

fn parse_config(yaml: &str) -> Config {
    match Config::from_yaml_str(yaml) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n---\n{yaml}"),
    }
}

/// Authorizes one request and reduces the answer to something comparable.
async fn check(
    auth: &Auth,
    creds: &Credentials,
    from: &str,
    action: Action,
    path: &str,
) -> Result<(), &'static str> {
    let req = AuthRequest {
        credentials: creds,
        ip: ip(from),
        action,
        path,
        protocol: if action.has_path() {
            Protocol::Rtsp
        } else {
            Protocol::Api
        },
        id: None,
        query: "",
        rtsp_method: Some("DESCRIBE"),
        rtsp_uri: path,
        rtsp_conn: "",
    };
    outcome(auth.authorize(&req).await)
}

fn outcome(r: Result<(), AuthError>) -> Result<(), &'static str> {
    match r {
        Ok(()) => Ok(()),
        Err(AuthError::Missing) => Err("missing"),
        Err(AuthError::Denied(_)) => Err("denied"),
        Err(AuthError::Hook(_)) => Err("hook"),
        Err(AuthError::Busy) => Err("busy"),
    }
}

fn basic(user: &str, pass: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        pass: pass.into(),
    }
}

const NONE: Credentials = Credentials::None;
use AuthAction::{Api, Metrics, Playback, Pprof, Publish, Read};

#[test]
fn auth_is_shareable_and_its_future_is_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let auth = Auth::new(&Config::default());
    send_sync(&auth);
    let req = AuthRequest {
        credentials: &NONE,
        ip: ip("::1"),
        action: Read,
        path: "cam",
        protocol: Protocol::Webrtc,
        id: None,
        query: "",
        rtsp_method: None,
        rtsp_uri: "",
        rtsp_conn: "",
    };
    // Servers await it inside spawned tasks and axum handlers.
    send(&auth.authorize(&req));
    assert_eq!(format!("{auth:?}"), "Auth { method: Internal, .. }");
}

#[tokio::test]
async fn default_config_allows_anonymous_media_from_anywhere_and_admin_from_loopback() {
    let auth = Auth::new(&Config::default());
    assert_eq!(auth.method(), AuthMethod::Internal);
    for from in ["203.0.113.5", "127.0.0.1", "2001:db8::1"] {
        for action in [Publish, Read, Playback] {
            assert_eq!(check(&auth, &NONE, from, action, "cam").await, Ok(()));
            // `any` takes whatever credentials come along.
            let creds = basic("who", "ever");
            assert_eq!(check(&auth, &creds, from, action, "a/b").await, Ok(()));
        }
    }
    for action in [Api, Metrics, Pprof] {
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(check(&auth, &NONE, local, action, "").await, Ok(()));
        }
        for remote in ["203.0.113.5", "127.0.0.2", "::2", "10.0.0.1"] {
            assert_eq!(
                check(&auth, &NONE, remote, action, "").await,
                Err("missing"),
                "{action} from {remote}"
            );
            let creds = basic("admin", "admin");
            assert_eq!(
                check(&auth, &creds, remote, action, "").await,
                Err("denied")
            );
        }
    }
}

fn sha256_b64(pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(pass.as_bytes()))
}

fn argon2_phc(pass: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = ok(SaltString::encode_b64(b"hubcast-salt-16b"));
    let params = ok(argon2::Params::new(4096, 3, 1, None));
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    ok(hasher.hash_password(pass.as_bytes(), &salt)).to_string()
}

#[tokio::test]
async fn plain_sha256_and_argon2_passwords() {
    let sha = sha256_b64("bobpass");
    let phc = argon2_phc("carolpass");
    assert!(phc.starts_with("$argon2id$v=19$m=4096,t=3,p=1$"), "{phc}");
    let yaml = format!(
        "authInternalUsers:\n\
         - user: alice\n  pass: alicepass\n  permissions: [publish, read]\n\
         - user: bob\n  pass: 'sha256:{sha}'\n  permissions: [publish, read]\n\
         - user: carol\n  pass: 'argon2:{phc}'\n  permissions: [publish, read]\n\
         - user: 'sha256:{}'\n  pass: davepass\n  permissions: [read]\n",
        sha256_b64("dave")
    );
    let auth = Auth::new(&parse_config(&yaml));
    for (user, pass) in [
        ("alice", "alicepass"),
        ("bob", "bobpass"),
        ("carol", "carolpass"),
    ] {
        let right = basic(user, pass);
        assert_eq!(
            check(&auth, &right, "198.51.100.9", Publish, "cam").await,
            Ok(()),
            "{user}"
        );
        for wrong in [
            basic(user, &format!("{pass}x")),
            basic(user, ""),
            basic(user, &sha256_b64(pass)),
            basic("mallory", pass),
        ] {
            assert_eq!(
                check(&auth, &wrong, "198.51.100.9", Publish, "cam").await,
                Err("denied"),
                "{wrong:?}"
            );
        }
    }
    // The stored hash itself is not a password.
    let creds = basic("bob", &format!("sha256:{sha}"));
    assert_eq!(
        check(&auth, &creds, "::1", Read, "cam").await,
        Err("denied")
    );
    let creds = basic("carol", &phc);
    assert_eq!(
        check(&auth, &creds, "::1", Read, "cam").await,
        Err("denied")
    );
    // A hashed user name.
    let creds = basic("dave", "davepass");
    assert_eq!(check(&auth, &creds, "::1", Read, "cam").await, Ok(()));
    assert_eq!(
        check(&auth, &creds, "::1", Publish, "cam").await,
        Err("denied")
    );
    // Nobody is anonymous here.
    assert_eq!(
        check(&auth, &NONE, "::1", Read, "cam").await,
        Err("missing")
    );
    // Bearer user:pass, what WHIP clients such as OBS send.
    let bearer = Credentials::Bearer("alice:alicepass".into());
    assert_eq!(check(&auth, &bearer, "::1", Read, "cam").await, Ok(()));
    let bearer = Credentials::Bearer("alice:nope".into());
    assert_eq!(
        check(&auth, &bearer, "::1", Read, "cam").await,
        Err("denied")
    );
    // Argon2 also works where no tokio runtime runs the check.
    let creds = basic("carol", "carolpass");
    let req = AuthRequest {
        credentials: &creds,
        ip: ip("::1"),
        action: Read,
        path: "cam",
        protocol: Protocol::Webrtc,
        id: None,
        query: "",
        rtsp_method: None,
        rtsp_uri: "",
        rtsp_conn: "",
    };
    let r = std::thread::scope(|s| {
        s.spawn(|| futures::executor::block_on(auth.authorize(&req)))
            .join()
    });
    assert!(matches!(r, Ok(Ok(()))), "{r:?}");
}

fn users(list: Vec<AuthUser>) -> Config {
    Config {
        auth_internal_users: list,
        ..Config::default()
    }
}

fn user(name: &str, pass: &str, ips: &[&str], perms: Vec<Permission>) -> AuthUser {
    AuthUser {
        user: name.into(),
        pass: pass.into(),
        ips: ips.iter().map(|n| ok(n.parse())).collect(),
        permissions: perms,
    }
}

fn perm(action: Action, path: &str) -> Permission {
    Permission {
        action,
        path: Some(path.into()),
    }
}

#[tokio::test]
async fn read_only_user_cannot_publish() {
    let auth = Auth::new(&users(vec![
        user("viewer", "v", &[], vec![Permission::any_path(Read)]),
        user(
            "cam",
            "c",
            &[],
            vec![Permission::any_path(Publish), Permission::any_path(Read)],
        ),
    ]));
    let viewer = basic("viewer", "v");
    assert_eq!(check(&auth, &viewer, "10.1.1.1", Read, "x").await, Ok(()));
    assert_eq!(
        check(&auth, &viewer, "10.1.1.1", Publish, "x").await,
        Err("denied")
    );
    assert_eq!(
        check(&auth, &viewer, "10.1.1.1", Playback, "x").await,
        Err("denied")
    );
    assert_eq!(
        check(&auth, &viewer, "127.0.0.1", Api, "").await,
        Err("denied")
    );
    let cam = basic("cam", "c");
    assert_eq!(check(&auth, &cam, "10.1.1.1", Publish, "x").await, Ok(()));
    // The viewer's password does not open the camera's account.
    let mixed = basic("cam", "v");
    assert_eq!(
        check(&auth, &mixed, "10.1.1.1", Publish, "x").await,
        Err("denied")
    );
}

#[tokio::test]
async fn path_limited_and_regex_permissions() {
    let auth = Auth::new(&users(vec![
        user(
            "u",
            "p",
            &[],
            vec![
                perm(Publish, "cam"),
                perm(Read, "~^(cam|lobby)[0-9]*$"),
                perm(Read, "exact/one"),
                perm(Playback, "~cam[0-9]"),
            ],
        ),
        // An anonymous user limited to one public path.
        user("any", "", &[], vec![perm(Read, "public")]),
    ]));
    let u = basic("u", "p");
    let at = "192.0.2.1";
    assert_eq!(check(&auth, &u, at, Publish, "cam").await, Ok(()));
    assert_eq!(check(&auth, &u, at, Publish, "cam2").await, Err("denied"));
    assert_eq!(
        check(&auth, &u, at, Publish, "cam/sub").await,
        Err("denied")
    );
    for path in ["cam", "cam12", "lobby", "lobby3", "exact/one"] {
        assert_eq!(check(&auth, &u, at, Read, path).await, Ok(()), "{path}");
    }
    // The regex must match the whole name.
    for path in ["xcam", "cam1x", "lobby/1", "exact", "exact/one/two"] {
        assert_eq!(
            check(&auth, &u, at, Read, path).await,
            Err("denied"),
            "{path}"
        );
    }
    // Unanchored in the file, anchored all the same (like path names in `paths`).
    assert_eq!(check(&auth, &u, at, Playback, "cam1").await, Ok(()));
    for path in ["cam12", "xcam1", "cam"] {
        assert_eq!(
            check(&auth, &u, at, Playback, path).await,
            Err("denied"),
            "{path}"
        );
    }
    assert_eq!(check(&auth, &NONE, at, Read, "public").await, Ok(()));
    assert_eq!(check(&auth, &NONE, at, Read, "cam").await, Err("missing"));
    assert_eq!(
        check(&auth, &NONE, at, Publish, "public").await,
        Err("missing")
    );
}

#[tokio::test]
async fn ips_limit_where_a_user_may_connect_from() {
    let auth = Auth::new(&users(vec![
        user(
            "lan",
            "p",
            &["192.168.0.0/16", "10.0.0.7/32", "fd00::/8"],
            vec![Permission::any_path(Read)],
        ),
        user(
            "any",
            "",
            &["127.0.0.0/8"],
            vec![Permission::any_path(Read)],
        ),
    ]));
    let lan = basic("lan", "p");
    for from in ["192.168.3.4", "10.0.0.7", "fd12::1", "::ffff:192.168.0.1"] {
        assert_eq!(
            check(&auth, &lan, from, Read, "cam").await,
            Ok(()),
            "{from}"
        );
    }
    for from in ["192.169.0.1", "10.0.0.8", "fe80::1", "8.8.8.8"] {
        assert_eq!(
            check(&auth, &lan, from, Read, "cam").await,
            Err("denied"),
            "{from}"
        );
    }
    assert_eq!(check(&auth, &NONE, "127.3.2.1", Read, "cam").await, Ok(()));
    assert_eq!(
        check(&auth, &NONE, "192.168.3.4", Read, "cam").await,
        Err("missing")
    );
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The nonce of the Digest challenge.
fn digest_nonce(auth: &Auth) -> String {
    let challenges = auth.challenges(Protocol::Rtsp);
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert_eq!(challenges[1], "Basic realm=\"hubcast\"");
    let digest = &challenges[0];
    assert!(
        digest.starts_with("Digest realm=\"hubcast\", nonce=\"")
            && digest.ends_with("\", algorithm=MD5"),
        "{digest}"
    );
    let start = digest.find("nonce=\"").map_or(0, |i| i + 7);
    let rest = &digest[start..];
    rest[..rest.find('"').unwrap_or(0)].to_string()
}

async fn rtsp_check(auth: &Auth, header: &str, method: &str) -> Result<(), &'static str> {
    rtsp_check_at(auth, header, method, "rtsp://192.0.2.1:8554/cam").await
}

async fn rtsp_check_at(
    auth: &Auth,
    header: &str,
    method: &str,
    url: &str,
) -> Result<(), &'static str> {
    let creds = Auth::parse_authorization(header);
    assert!(matches!(creds, Credentials::Digest(_)), "{header}");
    let req = AuthRequest {
        credentials: &creds,
        ip: ip("192.0.2.50"),
        action: Publish,
        path: "cam",
        protocol: Protocol::Rtsp,
        id: Some("session-1"),
        query: "",
        rtsp_method: Some(method),
        rtsp_uri: url,
        rtsp_conn: "",
    };
    outcome(auth.authorize(&req).await)
}

#[tokio::test]
async fn rtsp_digest_from_a_challenge() {
    let auth = Auth::new(&users(vec![user(
        "cam",
        "s3cret",
        &[],
        vec![Permission::any_path(Publish)],
    )]));
    let nonce = digest_nonce(&auth);
    let uri = "rtsp://192.0.2.1:8554/cam";
    let ha1 = md5_hex("cam:hubcast:s3cret");
    let ha2 = md5_hex(&format!("ANNOUNCE:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    let header = |user: &str, realm: &str, nonce: &str, response: &str| {
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\""
        )
    };
    let good = header("cam", "hubcast", &nonce, &response);
    assert_eq!(rtsp_check(&auth, &good, "ANNOUNCE").await, Ok(()));
    // The same URL written as a path, or with a trailing slash, is the same target.
    for same in ["/cam", "rtsp://192.0.2.1:8554/cam/"] {
        assert_eq!(
            rtsp_check_at(&auth, &good, "ANNOUNCE", same).await,
            Ok(()),
            "{same}"
        );
    }
    // A response captured for one URL does not open another path.
    for other in [
        "rtsp://192.0.2.1:8554/other",
        "/cam/../other",
        "rtsp://192.0.2.1:8554/",
    ] {
        assert!(
            rtsp_check_at(&auth, &good, "ANNOUNCE", other)
                .await
                .is_err(),
            "{other}"
        );
    }
    // Upper-case hex is the same response.
    let upper = header("cam", "hubcast", &nonce, &response.to_uppercase());
    assert_eq!(rtsp_check(&auth, &upper, "ANNOUNCE").await, Ok(()));
    // Tampered: one digit of the response, the method, the user, the realm, the nonce.
    let flipped = {
        let mut r = response.clone().into_bytes();
        r[7] = if r[7] == b'0' { b'1' } else { b'0' };
        String::from_utf8(r).unwrap_or_default()
    };
    let tampered = header("cam", "hubcast", &nonce, &flipped);
    assert_eq!(
        rtsp_check(&auth, &tampered, "ANNOUNCE").await,
        Err("denied")
    );
    assert_eq!(rtsp_check(&auth, &good, "RECORD").await, Err("denied"));
    let other_user = header("cam2", "hubcast", &nonce, &response);
    assert_eq!(
        rtsp_check(&auth, &other_user, "ANNOUNCE").await,
        Err("denied")
    );
    let other_realm = header("cam", "IPCAM", &nonce, &response);
    assert_eq!(
        rtsp_check(&auth, &other_realm, "ANNOUNCE").await,
        Err("denied")
    );
    // A nonce we did not issue, even with a response computed for it.
    let forged = format!("{:016x}{}", digest::unix_now(), "0".repeat(32));
    let forged_response = md5_hex(&format!("{ha1}:{forged}:{ha2}"));
    let forged = header("cam", "hubcast", &forged, &forged_response);
    assert_eq!(rtsp_check(&auth, &forged, "ANNOUNCE").await, Err("denied"));
    // Another Auth (another secret) does not take our nonces.
    let other = Auth::new(&users(vec![user(
        "cam",
        "s3cret",
        &[],
        vec![Permission::any_path(Publish)],
    )]));
    assert_eq!(rtsp_check(&other, &good, "ANNOUNCE").await, Err("denied"));

    // qop=auth, as ffmpeg and VLC send when offered.
    let cnonce = "0a4f113b";
    let qop_response = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    let qop = format!(
        "Digest username=\"cam\", realm=\"hubcast\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{qop_response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\""
    );
    assert_eq!(rtsp_check(&auth, &qop, "ANNOUNCE").await, Ok(()));
    let qop_bad = qop.replace("nc=00000001", "nc=00000002");
    assert_eq!(rtsp_check(&auth, &qop_bad, "ANNOUNCE").await, Err("denied"));
    // Digest outside RTSP (no method) cannot be checked.
    let creds = Auth::parse_authorization(&good);
    let req = AuthRequest {
        credentials: &creds,
        ip: ip("192.0.2.50"),
        action: Publish,
        path: "cam",
        protocol: Protocol::Webrtc,
        id: None,
        query: "",
        rtsp_method: None,
        rtsp_uri: "",
        rtsp_conn: "",
    };
    assert_eq!(outcome(auth.authorize(&req).await), Err("denied"));
}

#[tokio::test]
async fn digest_is_offered_only_where_it_can_work() {
    // Plain passwords only (and `any` users): Digest and Basic.
    let auth = Auth::new(&Config::default());
    let _ = digest_nonce(&auth);
    assert_eq!(
        auth.challenges(Protocol::Webrtc),
        ["Basic realm=\"hubcast\""]
    );
    assert_eq!(auth.challenges(Protocol::Api), ["Basic realm=\"hubcast\""]);
    // A hashed password: Basic only, and a Digest attempt fails with a reason.
    let hashed = Auth::new(&users(vec![user(
        "cam",
        &format!("sha256:{}", sha256_b64("pw")),
        &[],
        vec![Permission::any_path(Publish)],
    )]));
    assert_eq!(
        hashed.challenges(Protocol::Rtsp),
        ["Basic realm=\"hubcast\""]
    );
    let header = format!(
        "Digest username=\"cam\", realm=\"hubcast\", nonce=\"{}\", uri=\"/cam\", response=\"x\"",
        digest_nonce(&auth)
    );
    let creds = Auth::parse_authorization(&header);
    let req = AuthRequest {
        credentials: &creds,
        ip: ip("192.0.2.50"),
        action: Publish,
        path: "cam",
        protocol: Protocol::Rtsp,
        id: None,
        query: "",
        rtsp_method: Some("ANNOUNCE"),
        rtsp_uri: "/cam",
        rtsp_conn: "",
    };
    match hashed.authorize(&req).await {
        Err(AuthError::Denied(why)) => assert!(why.contains("hashed password"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The jwt and http methods: Basic only for RTSP, Bearer too for HTTP under jwt.
    let jwt = Auth::new(&Config {
        auth_method: AuthMethod::Jwt,
        auth_jwt_jwks: "http://127.0.0.1:9/jwks".into(),
        ..Config::default()
    });
    assert_eq!(jwt.challenges(Protocol::Rtsp), ["Basic realm=\"hubcast\""]);
    assert_eq!(
        jwt.challenges(Protocol::Webrtc),
        ["Basic realm=\"hubcast\"", "Bearer realm=\"hubcast\""]
    );
    let http = Auth::new(&Config {
        auth_method: AuthMethod::Http,
        auth_http_address: "http://127.0.0.1:9/auth".into(),
        ..Config::default()
    });
    assert_eq!(http.challenges(Protocol::Rtsp), ["Basic realm=\"hubcast\""]);
    assert_eq!(
        http.challenges(Protocol::Metrics),
        ["Basic realm=\"hubcast\""]
    );
}

#[test]
fn failure_limiter_slows_one_address_only() {
    let auth = Auth::new(&Config::default());
    let guesser = ip("203.0.113.66");
    for i in 1..=4 {
        assert_eq!(auth.note_failure(guesser), Duration::ZERO, "failure {i}");
    }
    assert_eq!(auth.note_failure(guesser), Duration::from_secs(2));
    assert_eq!(auth.note_failure(guesser), Duration::from_secs(2));
    assert_eq!(auth.note_failure(ip("203.0.113.67")), Duration::ZERO);
    assert_eq!(auth.note_failure(ip("2001:db8::1")), Duration::ZERO);
}

#[tokio::test]
async fn authorize_never_panics_on_random_credentials() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let auth = Auth::new(&users(vec![
        user("u", "p", &[], vec![Permission::any_path(Read)]),
        user("any", "", &["10.0.0.0/8"], vec![perm(Read, "~^[a")]),
    ]));
    let nonce = digest_nonce(&auth);
    for i in 0..3000 {
        let len = rng.random_range(0..48);
        let junk: String = (0..len).map(|_| rng.random::<char>()).collect();
        let header = match i % 4 {
            0 => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&junk)
            ),
            1 => format!("Bearer {junk}"),
            2 => format!(
                "Digest username=\"u\", realm=\"hubcast\", nonce=\"{nonce}\", uri=\"{}\", \
                 response=\"{}\", qop={}",
                junk.replace('"', ""),
                junk.len(),
                if rng.random_bool(0.5) { "auth" } else { "x" }
            ),
            _ => junk.clone(),
        };
        let creds = Auth::parse_authorization(&header);
        let req = AuthRequest {
            credentials: &creds,
            ip: IpAddr::from(rng.random::<[u8; 16]>()),
            action: AuthAction::ALL[i % 6],
            path: &junk,
            protocol: Protocol::Rtsp,
            id: Some(&junk),
            query: &junk,
            rtsp_method: Some(&junk),
            rtsp_uri: &junk,
            rtsp_conn: "",
        };
        let r = auth.authorize(&req).await;
        assert!(!matches!(r, Err(AuthError::Hook(_))), "{r:?}");
    }
}

// ---------------------------------------------------------------------------------------
// http

#[tokio::test]
async fn http_hook_gets_the_documented_fields_and_decides() {
    let server = test_server::start(|req| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        if body["user"] == "good" || body["token"] == "tok123" {
            (200, String::new())
        } else {
            (401, "{\"error\":\"nope\"}".to_string())
        }
    })
    .await;
    let auth = Auth::new(&Config {
        auth_method: AuthMethod::Http,
        auth_http_address: format!("{}/auth", server.url),
        ..Config::default()
    });
    let creds = basic("good", "pw1");
    let req = AuthRequest {
        credentials: &creds,
        ip: ip("::ffff:192.0.2.7"),
        action: Publish,
        path: "cam/1",
        protocol: Protocol::Webrtc,
        id: Some("5f2b6a4e-1d4c-4c0e-9a7e-3b9f0e1c2d3a"),
        query: "a=1&b=two",
        rtsp_method: None,
        rtsp_uri: "",
        rtsp_conn: "",
    };
    assert_eq!(outcome(auth.authorize(&req).await), Ok(()));
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/auth")
    );
    assert!(
        seen[0]
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        seen[0].headers
    );
    let body: serde_json::Value = ok(serde_json::from_slice(&seen[0].body));
    assert_eq!(
        body,
        serde_json::json!({
            "user": "good",
            "password": "pw1",
            "token": "",
            "ip": "192.0.2.7",
            "action": "publish",
            "path": "cam/1",
            "protocol": "webrtc",
            "id": "5f2b6a4e-1d4c-4c0e-9a7e-3b9f0e1c2d3a",
            "query": "a=1&b=two",
        })
    );

    // Refused: with credentials it is a denial (with the server's words for the log),
    // without it asks for credentials.
    let creds = basic("bad", "pw");
    let req = AuthRequest {
        credentials: &creds,
        id: None,
        protocol: Protocol::Rtsp,
        action: Read,
        ..req
    };
    match auth.authorize(&req).await {
        Err(AuthError::Denied(why)) => {
            assert!(why.contains("401") && why.contains("nope"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    let last = server.requests().pop().map(|r| r.body).unwrap_or_default();
    let body: serde_json::Value = ok(serde_json::from_slice(&last));
    assert_eq!(body["id"], serde_json::Value::Null);
    assert_eq!(body["protocol"], "rtsp");
    assert_eq!(body["action"], "read");
    let req = AuthRequest {
        credentials: &NONE,
        ..req
    };
    assert_eq!(outcome(auth.authorize(&req).await), Err("missing"));

    // A token, from the header or from ?jwt=.
    let bearer = Credentials::Bearer("tok123".into());
    let req = AuthRequest {
        credentials: &bearer,
        ..req
    };
    assert_eq!(outcome(auth.authorize(&req).await), Ok(()));
    let req = AuthRequest {
        credentials: &NONE,
        query: "x=1&jwt=tok123",
        ..req
    };
    assert_eq!(outcome(auth.authorize(&req).await), Ok(()));
    let last = server.requests().pop().map(|r| r.body).unwrap_or_default();
    let body: serde_json::Value = ok(serde_json::from_slice(&last));
    assert_eq!(
        (body["token"].as_str(), body["user"].as_str()),
        (Some("tok123"), Some(""))
    );

    // authHTTPExclude (api, metrics, pprof by default) is allowed without asking.
    let before = server.requests().len();
    let req = AuthRequest {
        credentials: &NONE,
        action: Api,
        path: "",
        protocol: Protocol::Api,
        query: "",
        ..req
    };
    assert_eq!(outcome(auth.authorize(&req).await), Ok(()));
    assert_eq!(
        server.requests().len(),
        before,
        "excluded actions are not sent"
    );
}

#[tokio::test]
async fn http_hook_unreachable_denies() {
    // A port nothing listens on: bind, note the port, close.
    let port = {
        let l = ok(std::net::TcpListener::bind("127.0.0.1:0"));
        ok(l.local_addr()).port()
    };
    let auth = Auth::new(&Config {
        auth_method: AuthMethod::Http,
        auth_http_address: format!("http://127.0.0.1:{port}/auth"),
        auth_http_exclude: Vec::new(),
        ..Config::default()
    });
    let creds = basic("u", "p");
    assert_eq!(
        check(&auth, &creds, "192.0.2.1", Read, "cam").await,
        Err("hook")
    );
    assert_eq!(check(&auth, &NONE, "127.0.0.1", Api, "").await, Err("hook"));
    // A server that answers something other than 2xx (here a redirect) denies too.
    let server = test_server::start(|_| (302, String::new())).await;
    let auth = Auth::new(&Config {
        auth_method: AuthMethod::Http,
        auth_http_address: server.url.clone(),
        ..Config::default()
    });
    assert_eq!(
        check(&auth, &creds, "192.0.2.1", Read, "cam").await,
        Err("denied")
    );
}

// ---------------------------------------------------------------------------------------
// jwt

/// A P-256 key pair made for these tests (openssl genpkey -algorithm EC
/// -pkeyopt ec_paramgen_curve:P-256); its public half is `EC_X`/`EC_Y`.
const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbMKI0C0mtu2UKpzx
M5c5dI0YU1o4rhf5Hm5EV98g1IShRANCAASQskhuQUc+AawNWewyzs15jHXEe0vv
YjKyO6hTF2stYQwwLRoz/ScXj4T4gnDfJNaXyx1c1Vk7xGPOJTFYzALq
-----END PRIVATE KEY-----
";
const EC_X: &str = "kLJIbkFHPgGsDVnsMs7NeYx1xHtL72IysjuoUxdrLWE";
const EC_Y: &str = "DDAtGjP9JxePhPiCcN8k1pfLHVzVWTvEY84lMVjMAuo";

/// An Ed25519 key pair made for these tests; its public half is `ED_X`.
const ED_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDI8uNhP/IXV+/i4GYEA9M8P424gqeG65dIa6h5Vsyom
-----END PRIVATE KEY-----
";
const ED_X: &str = "rxgvwNYmrBiFEQD6l3zyguiM5WmzYnKYlv-vgfT4uTw";

fn jwks() -> String {
    serde_json::json!({
        "keys": [
            // Keys hubcast cannot use are skipped, not fatal.
            {"kty": "EC", "crv": "P-521", "kid": "odd", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256", "use": "sig",
             "x": EC_X, "y": EC_Y},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": ED_X},
        ]
    })
    .to_string()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(alg: jsonwebtoken::Algorithm, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => ok(jsonwebtoken::EncodingKey::from_ec_pem(
            EC_PRIVATE_PEM.as_bytes(),
        )),
        jsonwebtoken::Algorithm::EdDSA => ok(jsonwebtoken::EncodingKey::from_ed_pem(
            ED_PRIVATE_PEM.as_bytes(),
        )),
        jsonwebtoken::Algorithm::HS256 => jsonwebtoken::EncodingKey::from_secret(b"secret"),
        other => panic!("{other:?}"),
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_string);
    ok(jsonwebtoken::encode(&header, claims, &key))
}

fn es256(claims: &serde_json::Value) -> String {
    sign(jsonwebtoken::Algorithm::ES256, Some("ec1"), claims)
}

fn claims(perms: serde_json::Value, exp: u64) -> serde_json::Value {
    serde_json::json!({"sub": "alice", "aud": "media", "exp": exp, "mediamtx_permissions": perms})
}

/// The same token with one bit of its signature flipped.
fn flip_signature_bit(token: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, sig) = token.rsplit_once('.').unwrap_or_default();
    let mut sig = ok(b64.decode(sig));
    sig[5] ^= 0x01;
    format!("{signed}.{}", b64.encode(sig))
}

async fn jwt_auth(server: &test_server::TestServer) -> Auth {
    let config = parse_config(&format!(
        "authMethod: jwt\nauthJWTJWKS: {}/jwks.json\nauthJWTExclude:\n- action: read\n  path: \
         public\n",
        server.url
    ));
    Auth::new(&config)
}

async fn jwt_check(
    auth: &Auth,
    creds: &Credentials,
    query: &str,
    action: Action,
    path: &str,
) -> Result<(), &'static str> {
    let req = AuthRequest {
        credentials: creds,
        ip: ip("198.51.100.20"),
        action,
        path,
        protocol: Protocol::Webrtc,
        id: None,
        query,
        rtsp_method: None,
        rtsp_uri: "",
        rtsp_conn: "",
    };
    outcome(auth.authorize(&req).await)
}

#[tokio::test]
async fn jwt_signed_tokens_with_permissions() {
    let server = test_server::start(|req| {
        if req.target == "/jwks.json" {
            (200, jwks())
        } else {
            (404, String::new())
        }
    })
    .await;
    let auth = jwt_auth(&server).await;
    let perms = serde_json::json!([
        {"action": "publish", "path": "cam"},
        {"action": "read", "path": "~^cam[0-9]+$"},
        {"action": "read"},
        {"action": "teleport"},
    ]);
    let token = es256(&claims(perms.clone(), now() + 600));
    let bearer = Credentials::Bearer(token.clone());
    assert_eq!(jwt_check(&auth, &bearer, "", Publish, "cam").await, Ok(()));
    assert_eq!(
        jwt_check(&auth, &bearer, "", Read, "anything").await,
        Ok(())
    );
    assert_eq!(
        jwt_check(&auth, &bearer, "", Publish, "cam2").await,
        Err("denied")
    );
    assert_eq!(jwt_check(&auth, &bearer, "", Api, "").await, Err("denied"));
    // The same token in ?jwt= or as the Basic password.
    let query = format!("foo=bar&jwt={token}");
    assert_eq!(
        jwt_check(&auth, &NONE, &query, Publish, "cam").await,
        Ok(())
    );
    let as_pass = basic("", &token);
    assert_eq!(jwt_check(&auth, &as_pass, "", Publish, "cam").await, Ok(()));

    // Tampered, expired, unsigned, signed with a key of the JWKS it has no business using.
    let tampered = Credentials::Bearer(flip_signature_bit(&token));
    assert_eq!(
        jwt_check(&auth, &tampered, "", Publish, "cam").await,
        Err("denied")
    );
    let expired = Credentials::Bearer(es256(&claims(perms.clone(), now() - 3600)));
    assert_eq!(
        jwt_check(&auth, &expired, "", Publish, "cam").await,
        Err("denied")
    );
    let just_expired = Credentials::Bearer(es256(&claims(perms.clone(), now() - 2)));
    assert_eq!(
        jwt_check(&auth, &just_expired, "", Publish, "cam").await,
        Err("denied")
    );
    let no_exp = serde_json::json!({"mediamtx_permissions": perms});
    let no_exp = Credentials::Bearer(es256(&no_exp));
    assert_eq!(
        jwt_check(&auth, &no_exp, "", Publish, "cam").await,
        Err("denied")
    );
    let hs = sign(
        jsonwebtoken::Algorithm::HS256,
        Some("secret"),
        &claims(perms.clone(), now() + 600),
    );
    assert_eq!(
        jwt_check(&auth, &Credentials::Bearer(hs), "", Publish, "cam").await,
        Err("denied")
    );
    let parts: Vec<&str> = token.split('.').collect();
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"alg":"none","typ":"JWT","kid":"ec1"}"#);
    let unsigned = Credentials::Bearer(format!("{none_header}.{}.", parts[1]));
    assert_eq!(
        jwt_check(&auth, &unsigned, "", Publish, "cam").await,
        Err("denied")
    );
    let garbage = Credentials::Bearer("not.a.jwt".into());
    assert_eq!(
        jwt_check(&auth, &garbage, "", Publish, "cam").await,
        Err("denied")
    );

    // No token: ask for one, unless authJWTExclude allows the request.
    assert_eq!(
        jwt_check(&auth, &NONE, "", Read, "cam").await,
        Err("missing")
    );
    assert_eq!(jwt_check(&auth, &NONE, "", Read, "public").await, Ok(()));

    // EdDSA, a key without kid in the token, and a claim that holds its JSON as a string.
    let stringly = serde_json::json!({
        "exp": now() + 60,
        "mediamtx_permissions": "[{\"action\":\"publish\",\"path\":\"\"}]",
    });
    let ed = sign(jsonwebtoken::Algorithm::EdDSA, None, &stringly);
    let ed = Credentials::Bearer(ed);
    assert_eq!(jwt_check(&auth, &ed, "", Publish, "any/path").await, Ok(()));
    assert_eq!(
        jwt_check(&auth, &ed, "", Read, "any/path").await,
        Err("denied")
    );
    // Without the claim.
    let bare = Credentials::Bearer(es256(&serde_json::json!({"exp": now() + 60})));
    assert_eq!(
        jwt_check(&auth, &bare, "", Read, "cam").await,
        Err("denied")
    );

    // All of the above took one fetch of the JWKS.
    assert_eq!(auth.inner.jwt.fetches().await, 1);
    // A kid the set lacks makes one more fetch, and not another within 10 s.
    let unknown = Credentials::Bearer(sign(
        jsonwebtoken::Algorithm::ES256,
        Some("rotated"),
        &claims(serde_json::json!([{"action": "read"}]), now() + 60),
    ));
    assert_eq!(
        jwt_check(&auth, &unknown, "", Read, "cam").await,
        Err("denied")
    );
    assert_eq!(
        auth.inner.jwt.fetches().await,
        1,
        "within 10 s of the first fetch"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
}

#[tokio::test]
async fn jwt_unknown_kid_refetches_after_the_interval() {
    let served = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&served);
    // The first JWKS lacks the key; later ones have it (a key rotation).
    let server = test_server::start(move |_| {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            (200, jwks())
        } else {
            let only_ed = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": ED_X}]});
            (200, only_ed.to_string())
        }
    })
    .await;
    let auth = jwt_auth(&server).await;
    let token = Credentials::Bearer(es256(&claims(
        serde_json::json!([{"action": "read"}]),
        now() + 60,
    )));
    assert_eq!(
        jwt_check(&auth, &token, "", Read, "cam").await,
        Err("denied")
    );
    assert_eq!(auth.inner.jwt.fetches().await, 1);
    // Pretend the last attempt was 10 s ago.
    auth.inner.jwt.backdate(jwt::REFETCH_INTERVAL).await;
    assert_eq!(jwt_check(&auth, &token, "", Read, "cam").await, Ok(()));
    assert_eq!(auth.inner.jwt.fetches().await, 2);
}

#[tokio::test]
async fn jwt_without_a_reachable_jwks_denies() {
    let port = {
        let l = ok(std::net::TcpListener::bind("127.0.0.1:0"));
        ok(l.local_addr()).port()
    };
    let auth = Auth::new(&Config {
        auth_method: AuthMethod::Jwt,
        auth_jwt_jwks: format!("http://127.0.0.1:{port}/jwks"),
        ..Config::default()
    });
    let token = Credentials::Bearer(es256(&claims(
        serde_json::json!([{"action": "read"}]),
        now() + 60,
    )));
    assert_eq!(jwt_check(&auth, &token, "", Read, "cam").await, Err("hook"));
    // A JWKS that is not one.
    let server = test_server::start(|_| (200, "{\"keys\": 5}".to_string())).await;
    let auth = jwt_auth(&server).await;
    assert_eq!(jwt_check(&auth, &token, "", Read, "cam").await, Err("hook"));
}
