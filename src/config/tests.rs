use super::*;

fn parse(yaml: &str) -> Config {
    match Config::from_yaml_str(yaml) {
        Ok(c) => c,
        Err(e) => panic!("config should parse: {e}\n---\n{yaml}"),
    }
}

/// The error text for a document that must be refused.
fn refuse(yaml: &str) -> String {
    match Config::from_yaml_str(yaml) {
        Ok(c) => panic!("config should be refused:\n{yaml}\n---\nparsed as {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
}

fn addr(text: &str) -> SocketAddr {
    match text.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad test address {text}: {e}"),
    }
}

#[test]
fn defaults_match_mediamtx() {
    let c = Config::default();
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.read_timeout, Duration::from_secs(10));
    assert_eq!(c.write_timeout, Duration::from_secs(10));
    assert_eq!(c.write_queue_size, 512);
    assert!(c.api);
    assert_eq!(c.api_address, addr("127.0.0.1:9997"));
    assert!(c.metrics);
    assert_eq!(c.metrics_address, addr("127.0.0.1:9998"));
    assert!(c.pprof);
    assert_eq!(c.pprof_address, addr("127.0.0.1:9999"));
    assert!(c.rtsp);
    assert_eq!(c.rtsp_transports, [RtspTransport::Udp, RtspTransport::Tcp]);
    assert_eq!(c.rtsp_address, addr("0.0.0.0:8554"));
    assert_eq!(c.rtp_address, addr("0.0.0.0:8000"));
    assert_eq!(c.rtcp_address, addr("0.0.0.0:8001"));
    assert!(c.webrtc);
    assert_eq!(c.webrtc_address, addr("0.0.0.0:8889"));
    assert_eq!(c.webrtc_local_udp_address, addr("0.0.0.0:8189"));
    assert!(c.webrtc_additional_hosts.is_empty());
    assert!(c.webrtc_ice_servers2.is_empty());
    assert_eq!(c.webrtc_handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.webrtc_allow_origins, ["*"]);
    assert_eq!(
        c.webrtc_srtp_profiles,
        [SrtpProfile::AeadAes128Gcm, SrtpProfile::AesCm128HmacSha1_80]
    );
    assert_eq!(c.webrtc_max_sessions, 0);
    assert_eq!(c.auth_method, AuthMethod::Internal);
    type UserRow<'a> = (
        &'a str,
        &'a str,
        Vec<String>,
        Vec<(AuthAction, Option<&'a str>)>,
    );
    let users: Vec<UserRow> = c
        .auth_internal_users
        .iter()
        .map(|u| {
            (
                u.user.as_str(),
                u.pass.as_str(),
                u.ips.iter().map(ToString::to_string).collect(),
                u.permissions
                    .iter()
                    .map(|p| (p.action, p.path.as_deref()))
                    .collect(),
            )
        })
        .collect();
    use AuthAction::*;
    assert_eq!(
        users,
        [
            (
                "any",
                "",
                vec![],
                vec![(Publish, None), (Read, None), (Playback, None)]
            ),
            (
                "any",
                "",
                vec!["127.0.0.1/32".to_string(), "::1/128".to_string()],
                vec![(Api, None), (Metrics, None), (Pprof, None)]
            ),
        ]
    );
    assert_eq!(c.auth_http_address, "");
    assert_eq!(
        c.auth_http_exclude,
        [Api, Metrics, Pprof].map(Permission::any_path)
    );
    assert_eq!(c.auth_jwt_jwks, "");
    assert_eq!(c.auth_jwt_claim_key, "mediamtx_permissions");
    assert!(c.auth_jwt_exclude.is_empty());
    let pd = &c.path_defaults;
    assert_eq!(pd.source, "publisher");
    assert_eq!(pd.source_url(), None);
    assert!(!pd.source_on_demand);
    assert_eq!(pd.source_on_demand_start_timeout, Duration::from_secs(10));
    assert_eq!(pd.source_on_demand_close_after, Duration::from_secs(10));
    assert_eq!(pd.source_reconnect_grace, Duration::from_secs(10));
    assert_eq!(pd.rtsp_transport, SourceTransport::Automatic);
    assert!(!pd.override_publisher);
    assert_eq!(pd.max_readers, 0);
    assert_eq!(c.paths, [(ALL_OTHERS.to_string(), pd.clone())]);
    assert_eq!(c.path_conf("any/name"), Some(pd));
    assert!(c.pulled_paths().is_empty());
}

#[test]
fn empty_or_comment_only_document_is_the_default() {
    assert_eq!(parse(""), Config::default());
    assert_eq!(parse("# nothing here\n\n"), Config::default());
    assert_eq!(parse("paths:\npathDefaults:\n"), Config::default());
}

#[test]
fn shipped_config_file_equals_the_defaults() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/hubcast.yml");
    match Config::load(&file) {
        Ok(c) => assert_eq!(c, Config::default()),
        Err(e) => panic!("{e}"),
    }
    // Every key is written out with its default, not only left to the built-in value.
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for (key, _) in TOP_SECTION.keys {
        // The singular MediaMTX spelling is an alias, described next to the plural key.
        if *key != "webrtcAllowOrigin" {
            let line = format!("{key}:");
            assert!(lines.iter().any(|l| l.starts_with(&line)), "{key}");
        }
    }
    for (key, _) in PATH_SECTION.keys {
        let line = format!("  {key}:");
        assert!(lines.iter().any(|l| l.starts_with(&line)), "{key}");
    }
}

const FULL: &str = "\
logLevel: debug
readTimeout: 1m30s
writeTimeout: 500ms
writeQueueSize: 1024
api: no
apiAddress: :9000
metrics: yes
metricsAddress: 0.0.0.0:9100
pprof: no
pprofAddress: '[::1]:6060'
rtsp: no
rtspTransports: [tcp]
rtspAddress: 127.0.0.1:0
rtpAddress: '[::1]:9000'
rtcpAddress: localhost:9001
webrtc: yes
webrtcAddress: :0
webrtcLocalUDPAddress: 10.0.0.1:8189
webrtcAdditionalHosts: [192.168.1.5, media.example.com]
webrtcICEServers2:
  - url: stun:stun.l.google.com:19302
  - url: turns:turn.example.com:5349
    username: user
    password: '1234'
webrtcHandshakeTimeout: 2h
webrtcAllowOrigins: ['https://example.com', 'http://*.example.org']
webrtcSRTPProfiles: [AEAD_AES_256_GCM, AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM]
webrtcMaxSessions: 50
authMethod: jwt
authInternalUsers:
  - user: any
    ips: []
    permissions: [read]
  - user: admin
    pass: 'sha256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w='
    ips: [10.0.0.0/8, 192.168.1.5, '::1', 'fd00::/8']
    permissions:
      - action: publish
        path: cam
      - action: read
        path: '~^cam[0-9]+$'
      - action: playback
        path:
      - action: api
authHTTPAddress: http://127.0.0.1:9000/auth
authHTTPExclude: []
authJWTJWKS: https://idp.example.com/.well-known/jwks.json
authJWTClaimKey: perms
authJWTExclude:
  - action: read
    path: public
pathDefaults:
  source: publisher
  sourceOnDemand: yes
  sourceOnDemandStartTimeout: 5s
  sourceOnDemandCloseAfter: 1m
  sourceReconnectGrace: 0s
  rtspTransport: tcp
  overridePublisher: true
  maxReaders: 7
paths:
  cam:
    maxReaders: 1
    source: rtsps://admin:secret@192.168.1.10:322/stream1?channel=1
    sourceOnDemand: no
    sourceReconnectGrace: 30s
    rtspTransport: udp
  ~^(a|b)/[0-9]+$:
    overridePublisher: false
  all_others:
";

#[test]
fn full_file_round_trips() {
    let c = parse(FULL);
    let pd = PathConf {
        source: "publisher".to_string(),
        source_on_demand: true,
        source_on_demand_start_timeout: Duration::from_secs(5),
        source_on_demand_close_after: Duration::from_secs(60),
        source_reconnect_grace: Duration::ZERO,
        rtsp_transport: SourceTransport::Tcp,
        override_publisher: true,
        max_readers: 7,
    };
    let cam = PathConf {
        source: "rtsps://admin:secret@192.168.1.10:322/stream1?channel=1".into(),
        source_on_demand: false,
        source_reconnect_grace: Duration::from_secs(30),
        rtsp_transport: SourceTransport::Udp,
        max_readers: 1,
        ..pd.clone()
    };
    let expected = Config {
        log_level: LogLevel::Debug,
        read_timeout: Duration::from_secs(90),
        write_timeout: Duration::from_millis(500),
        write_queue_size: 1024,
        api: false,
        api_address: addr("0.0.0.0:9000"),
        metrics: true,
        metrics_address: addr("0.0.0.0:9100"),
        pprof: false,
        pprof_address: addr("[::1]:6060"),
        rtsp: false,
        rtsp_transports: vec![RtspTransport::Tcp],
        rtsp_address: addr("127.0.0.1:0"),
        rtp_address: addr("[::1]:9000"),
        rtcp_address: addr("127.0.0.1:9001"),
        webrtc: true,
        webrtc_address: addr("0.0.0.0:0"),
        webrtc_local_udp_address: addr("10.0.0.1:8189"),
        webrtc_additional_hosts: vec!["192.168.1.5".into(), "media.example.com".into()],
        webrtc_ice_servers2: vec![
            IceServer {
                url: "stun:stun.l.google.com:19302".into(),
                username: String::new(),
                password: String::new(),
            },
            IceServer {
                url: "turns:turn.example.com:5349".into(),
                username: "user".into(),
                password: "1234".into(),
            },
        ],
        webrtc_handshake_timeout: Duration::from_secs(7200),
        webrtc_allow_origins: vec!["https://example.com".into(), "http://*.example.org".into()],
        webrtc_srtp_profiles: vec![
            SrtpProfile::AeadAes256Gcm,
            SrtpProfile::AesCm128HmacSha1_80,
            SrtpProfile::AeadAes128Gcm,
        ],
        webrtc_max_sessions: 50,
        auth_method: AuthMethod::Jwt,
        auth_internal_users: vec![
            AuthUser {
                user: "any".into(),
                pass: String::new(),
                ips: Vec::new(),
                permissions: vec![Permission::any_path(AuthAction::Read)],
            },
            AuthUser {
                user: "admin".into(),
                pass: "sha256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w=".into(),
                ips: ["10.0.0.0/8", "192.168.1.5/32", "::1/128", "fd00::/8"]
                    .iter()
                    .map(|n| n.parse().unwrap_or_else(|e| panic!("{n}: {e}")))
                    .collect(),
                permissions: vec![
                    Permission {
                        action: AuthAction::Publish,
                        path: Some("cam".into()),
                    },
                    Permission {
                        action: AuthAction::Read,
                        path: Some("~^cam[0-9]+$".into()),
                    },
                    Permission::any_path(AuthAction::Playback),
                    Permission::any_path(AuthAction::Api),
                ],
            },
        ],
        auth_http_address: "http://127.0.0.1:9000/auth".into(),
        auth_http_exclude: Vec::new(),
        auth_jwt_jwks: "https://idp.example.com/.well-known/jwks.json".into(),
        auth_jwt_claim_key: "perms".into(),
        auth_jwt_exclude: vec![Permission {
            action: AuthAction::Read,
            path: Some("public".into()),
        }],
        path_defaults: pd.clone(),
        paths: vec![
            ("cam".into(), cam.clone()),
            (
                "~^(a|b)/[0-9]+$".into(),
                PathConf {
                    override_publisher: false,
                    ..pd.clone()
                },
            ),
            (ALL_OTHERS.into(), pd.clone()),
        ],
    };
    assert_eq!(c, expected);
    assert_eq!(c.pulled_paths(), [("cam", &cam)]);
    assert_eq!(
        cam.source_url(),
        Some("rtsps://admin:secret@192.168.1.10:322/stream1?channel=1")
    );
}

#[test]
fn booleans_accept_yes_no_true_false() {
    for (text, want) in [("yes", true), ("true", true), ("Yes", true), ("no", false)] {
        assert_eq!(parse(&format!("rtsp: {text}")).rtsp, want, "{text}");
    }
    assert!(!parse("webrtc: false").webrtc);
    assert!(!parse("webrtc: 'no'").webrtc);
}

#[test]
fn path_precedence_is_exact_then_regex_in_order_then_all_others() {
    let c = parse(
        "paths:\n  ~^cam.*:\n    maxReaders: 2\n  ~^cam1$:\n    maxReaders: 3\n  \
             cam1:\n    maxReaders: 1\n  all_others:\n    maxReaders: 9\n",
    );
    let readers = |name: &str| c.path_conf(name).map(|p| p.max_readers);
    assert_eq!(readers("cam1"), Some(1), "exact name beats any regex");
    assert_eq!(readers("cam2"), Some(2), "first matching regex wins");
    assert_eq!(readers("other"), Some(9), "all_others catches the rest");
}

#[test]
fn regex_must_match_the_whole_name() {
    let c = parse("paths:\n  ~cam[0-9]:\n");
    assert!(c.path_conf("cam1").is_some());
    assert!(c.path_conf("cam12").is_none());
    assert!(c.path_conf("xcam1").is_none());
}

#[test]
fn without_all_others_unlisted_paths_do_not_exist() {
    let c = parse("paths:\n  cam:\n");
    assert!(c.path_conf("cam").is_some());
    assert!(c.path_conf("other").is_none());
    let c = parse("paths: {}");
    assert!(c.path_conf("cam").is_none());
}

#[test]
fn all_is_an_alias_of_all_others() {
    let c = parse("paths:\n  all:\n    maxReaders: 4\n");
    assert_eq!(c.path_conf("x").map(|p| p.max_readers), Some(4));
    let e = refuse("paths:\n  all:\n  all_others:\n");
    assert_mentions(&e, &["line 3", "listed twice"]);
}

#[test]
fn path_defaults_merge_under_paths_whatever_the_key_order() {
    let c = parse(
        "paths:\n  cam:\n    maxReaders: 3\n  empty:\n  other: {}\n\
             pathDefaults:\n  overridePublisher: yes\n  maxReaders: 5\n",
    );
    let cam = c.path_conf("cam");
    assert_eq!(
        cam.map(|p| (p.override_publisher, p.max_readers)),
        Some((true, 3))
    );
    for name in ["empty", "other"] {
        assert_eq!(c.path_conf(name), Some(&c.path_defaults), "{name}");
    }
    assert!(c.path_defaults.override_publisher);
    assert_eq!(c.path_defaults.max_readers, 5);
    // Without a `paths` key the built-in all_others entry inherits pathDefaults too.
    let c = parse("pathDefaults:\n  maxReaders: 2\n");
    assert_eq!(c.path_conf("x").map(|p| p.max_readers), Some(2));
}

#[test]
fn unknown_top_level_key_names_key_line_and_suggestion() {
    let e = refuse("logLevel: info\nrtsp: yes\nrtspAdress: :8554\n");
    assert_eq!(
        e,
        "line 3 column 1: unknown key \"rtspAdress\" (did you mean \"rtspAddress\"?)"
    );
    let e = refuse("completelyDifferent: 1\n");
    assert_mentions(&e, &["unknown key \"completelyDifferent\"", "line 1"]);
    assert!(!e.contains("did you mean"), "{e}");
}

#[test]
fn unknown_key_inside_a_path_names_path_key_and_line() {
    let e = refuse("paths:\n  cam:\n    maxReaders: 1\n    overidePublisher: yes\n");
    assert_eq!(
        e,
        "line 4 column 5: paths.cam: unknown key \"overidePublisher\" \
             (did you mean \"overridePublisher\"?)"
    );
    let e = refuse("pathDefaults:\n  sorce: publisher\n");
    assert_mentions(&e, &["line 2", "pathDefaults", "\"sorce\"", "\"source\""]);
}

#[test]
fn mediamtx_keys_not_implemented_are_refused_by_name() {
    for key in [
        "hls: no",
        "srt: no",
        "rtmp: no",
        "record: no",
        "hlsAddress: :8888",
    ] {
        let e = refuse(&format!("rtsp: yes\n{key}\n"));
        let name = key.split(':').next().unwrap_or_default();
        assert_mentions(
            &e,
            &[&format!("{name:?}"), "not supported by hubcast", "line 2"],
        );
    }
    let e = refuse("paths:\n  cam:\n    record: yes\n");
    assert_mentions(&e, &["paths.cam", "\"record\"", "not supported", "line 3"]);
    let e = refuse("paths:\n  cam:\n    source: rtmp://10.0.0.1/live\n");
    assert_mentions(&e, &["paths.cam.source", "not supported", "line 3"]);
    let e = refuse("webrtcICEServers2:\n  - url: stun:x\n    clientOnly: yes\n");
    assert_mentions(&e, &["\"clientOnly\"", "not supported"]);
}

#[test]
fn wrong_types_name_the_key() {
    let e = refuse("paths:\n  cam:\n    overridePublisher: maybe\n");
    assert_mentions(
        &e,
        &[
            "line 3",
            "paths.cam.overridePublisher",
            "expected a boolean",
        ],
    );
    let e = refuse("rtsp: [yes]\n");
    assert_mentions(&e, &["rtsp:", "expected a boolean"]);
    let e = refuse("writeQueueSize: lots\n");
    assert_mentions(&e, &["writeQueueSize", "line 1"]);
    let e = refuse("paths:\n  cam:\n    maxReaders: -1\n");
    assert_mentions(&e, &["paths.cam.maxReaders", ">= 0"]);
    let e = refuse("paths: [cam]\n");
    assert_mentions(&e, &["paths", "mapping"]);
    let e = refuse("just a string\n");
    assert_mentions(&e, &["mapping of configuration keys"]);
}

#[test]
fn bad_addresses_are_refused_with_the_key() {
    let e = refuse("rtspAddress: foo:bar\n");
    assert_mentions(
        &e,
        &[
            "rtspAddress: invalid address \"foo:bar\"",
            "invalid port \"bar\"",
        ],
    );
    assert_eq!(Config::from_yaml_str("rtspAddress: foo:bar").ok(), None);
    for (bad, why) in [
        ("8554", "missing ':'"),
        ("::1:8554", "brackets"),
        ("1.2.3.4:70000", "invalid port"),
        ("1.2.3.4", "missing port"),
        ("bad host:1", "not an IP address or host name"),
        ("'[nope]:1'", "not an IPv6 address"),
        ("''", "missing port"),
    ] {
        let e = refuse(&format!("webrtcAddress: {bad}\n"));
        assert_mentions(&e, &["webrtcAddress", why]);
    }
}

#[test]
fn addresses_parse_like_mediamtx() {
    let ok = |t: &str| parse_address(t).ok();
    assert_eq!(ok(":8554"), Some(addr("0.0.0.0:8554")));
    assert_eq!(ok("127.0.0.1:8554"), Some(addr("127.0.0.1:8554")));
    assert_eq!(ok("[::1]:8554"), Some(addr("[::1]:8554")));
    assert_eq!(ok("LOCALHOST:1"), Some(addr("127.0.0.1:1")));
    assert_eq!(ok(":0"), Some(addr("0.0.0.0:0")));
    assert_eq!(ok(":+80"), None);
    assert_eq!(ok(":"), None);
}

#[test]
fn bad_durations_are_refused_with_the_key() {
    let e = refuse("readTimeout: 10\n");
    assert_mentions(&e, &["readTimeout", "use a unit, e.g. 10s", "line 1"]);
    for (bad, why) in [
        ("10x", "unknown unit \"x\""),
        ("-5s", "negative"),
        ("0s", "greater than 0"),
        ("s", "invalid duration"),
        ("''", "empty duration"),
        ("1.5", "missing unit"),
    ] {
        let e = refuse(&format!("webrtcHandshakeTimeout: {bad}\n"));
        assert_mentions(&e, &["webrtcHandshakeTimeout", why]);
    }
}

#[test]
fn durations_parse_like_go() {
    let ok = |t: &str| parse_duration(t).ok();
    assert_eq!(ok("10s"), Some(Duration::from_secs(10)));
    assert_eq!(ok("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(ok("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(ok("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(ok("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(ok(".5m"), Some(Duration::from_secs(30)));
    assert_eq!(ok("1us"), Some(Duration::from_micros(1)));
    assert_eq!(ok("1\u{b5}s"), Some(Duration::from_micros(1)));
    assert_eq!(ok("3ns"), Some(Duration::from_nanos(3)));
    assert_eq!(ok("99999999999999999999999999h"), None);
    assert_eq!(ok("10"), None);
    // Like Go, a bare zero needs no unit.
    assert_eq!(ok("0"), Some(Duration::ZERO));
    assert_eq!(ok("+0"), Some(Duration::ZERO));
    assert_eq!(ok("00"), None);
}

#[test]
fn bad_regex_is_refused_with_its_line() {
    let e = refuse("paths:\n  cam:\n  ~^(unclosed:\n");
    assert_mentions(
        &e,
        &["line 3", "paths", "invalid regular expression", "unclosed"],
    );
    let e = refuse("paths:\n  '~':\n");
    assert_mentions(&e, &["empty regular expression"]);
}

#[test]
fn write_queue_size_must_be_a_power_of_two() {
    for bad in ["0", "500", "-512"] {
        let e = refuse(&format!("writeQueueSize: {bad}\n"));
        assert_mentions(&e, &["writeQueueSize", "line 1"]);
    }
    let e = refuse("writeQueueSize: 500\n");
    assert_mentions(&e, &["power of two", "500"]);
    assert_eq!(parse("writeQueueSize: 1").write_queue_size, 1);
}

#[test]
fn invalid_path_names_are_refused() {
    for (bad, why) in [
        ("..", "\"..\" segment"),
        ("a/../b", "\"..\" segment"),
        ("a/./b", "\".\" segment"),
        ("a//b", "empty segment"),
        ("/a", "start or end with '/'"),
        ("a/", "start or end with '/'"),
        ("a b", "character ' '"),
        ("%2e%2e", "character '%'"),
        ("", "empty"),
        ("caf\u{e9}", "character"),
    ] {
        match validate_path_name(bad) {
            Ok(()) => panic!("{bad:?} should be refused"),
            Err(e) => assert_mentions(&e.to_string(), &[&format!("{bad:?}"), why]),
        }
    }
    let long = "a".repeat(MAX_PATH_NAME_LEN + 1);
    assert!(validate_path_name(&long).is_err());
    for good in [
        "cam",
        "a/b/c",
        "live.stream-1_x~y",
        &"a".repeat(MAX_PATH_NAME_LEN),
    ] {
        assert!(validate_path_name(good).is_ok(), "{good:?}");
    }
    let e = refuse("paths:\n  ok:\n  a//b:\n");
    assert_mentions(
        &e,
        &["line 3", "invalid path name \"a//b\"", "empty segment"],
    );
    let e = refuse("paths:\n  '..':\n");
    assert_mentions(&e, &["line 2", "invalid path name"]);
    let e = refuse("paths:\n  cam:\n  cam:\n");
    assert_mentions(&e, &["line 3", "listed twice"]);
}

#[test]
fn non_yaml_garbage_is_refused_with_a_location() {
    match Config::from_yaml_str("rtsp: yes\n  : : [\n\t{{{") {
        Ok(c) => panic!("parsed garbage as {c:?}"),
        Err(e) => assert!(e.line().is_some(), "{e}"),
    }
    let e = refuse("paths:\n  cam: {\n");
    assert!(e.starts_with("line "), "{e}");
    let e = refuse("rtsp: yes\n---\nrtsp: no\n");
    assert_mentions(&e, &["more than one document"]);
}

#[test]
fn multicast_transport_is_refused_clearly() {
    let e = refuse("rtspTransports: [udp, multicast, tcp]\n");
    assert_mentions(&e, &["rtspTransports", "multicast", "not supported"]);
    let e = refuse("rtspTransports: [udp, quic]\n");
    assert_mentions(&e, &["unknown RTSP transport \"quic\""]);
    let e = refuse("rtspTransports: []\n");
    assert_mentions(&e, &["rtspTransports", "must not be empty"]);
    let e = refuse("rtspTransports: [tcp, tcp]\n");
    assert_mentions(&e, &["tcp is listed twice"]);
}

#[test]
fn srtp_profiles_are_checked() {
    let e = refuse("webrtcSRTPProfiles: []\n");
    assert_mentions(&e, &["webrtcSRTPProfiles", "must not be empty"]);
    let e = refuse("webrtcSRTPProfiles: [AES_CM_128_HMAC_SHA1_32]\n");
    assert_mentions(&e, &["unknown SRTP profile", "AEAD_AES_128_GCM"]);
    let c = parse("webrtcSRTPProfiles: [AEAD_AES_128_GCM]\n");
    assert_eq!(c.webrtc_srtp_profiles, [SrtpProfile::AeadAes128Gcm]);
    for (name, profile) in SrtpProfile::NAMES {
        assert_eq!(profile.as_str(), *name);
    }
    use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile as P;
    assert_eq!(
        SrtpProfile::AesCm128HmacSha1_80.to_dtls(),
        P::Srtp_Aes128_Cm_Hmac_Sha1_80
    );
}

#[test]
fn allow_origin_accepts_the_mediamtx_singular_key() {
    let c = parse("webrtcAllowOrigin: 'https://a.example'\n");
    assert_eq!(c.webrtc_allow_origins, ["https://a.example"]);
    let e = refuse("webrtcAllowOrigin: '*'\nwebrtcAllowOrigins: ['*']\n");
    assert_mentions(&e, &["webrtcAllowOrigin", "webrtcAllowOrigins", "both"]);
    let e = refuse("webrtcAllowOrigins: [example.com]\n");
    assert_mentions(&e, &["webrtcAllowOrigins[0]", "needs a scheme"]);
    let e = refuse("webrtcAllowOrigins: ['https://example.com/']\n");
    assert_mentions(&e, &["trailing '/'"]);
}

#[test]
fn ice_servers_and_hosts_are_checked() {
    let e = refuse("webrtcICEServers2:\n  - url: http://x\n");
    assert_mentions(&e, &["webrtcICEServers2[0].url", "stun:, turn: or turns:"]);
    let e = refuse("webrtcICEServers2:\n  - url: turn:t.example:3478\n");
    assert_mentions(&e, &["needs a username and a password"]);
    let e = refuse("webrtcICEServers2:\n  - username: u\n");
    assert_mentions(&e, &["missing key \"url\""]);
    let e = refuse("webrtcAdditionalHosts: ['not a host']\n");
    assert_mentions(
        &e,
        &["webrtcAdditionalHosts[0]", "not an IP address or host name"],
    );
}

#[test]
fn duplicate_keys_are_refused() {
    let e = refuse("rtsp: yes\nrtsp: no\n");
    assert_mentions(&e, &["line 2", "duplicate key \"rtsp\""]);
}

#[test]
fn load_reports_the_file_name() {
    let dir = std::env::temp_dir().join(format!("hubcast-config-test-{}", std::process::id()));
    let write = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("x.yml"), "rtsp: yes\n\nrtspAdress: :1\n"));
    assert!(write.is_ok(), "{write:?}");
    let file = dir.join("x.yml");
    let e = Config::load(&file).map(drop).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        e,
        Err(format!(
            "{}: line 3 column 1: unknown key \"rtspAdress\" (did you mean \"rtspAddress\"?)",
            file.display()
        ))
    );
    let missing = Config::load(Path::new("/nonexistent/hubcast.yml"));
    assert!(matches!(missing, Err(ConfigError::Read { .. })));
}

#[test]
fn api_metrics_and_pprof_toggles_and_addresses() {
    let c = parse(
        "api: no\napiAddress: :9997\nmetrics: false\nmetricsAddress: 10.0.0.1:9100\n\
             pprof: 'no'\npprofAddress: localhost:6060\n",
    );
    assert_eq!(
        (c.api, c.metrics, c.pprof),
        (false, false, false),
        "toggles"
    );
    assert_eq!(c.api_address, addr("0.0.0.0:9997"));
    assert_eq!(c.metrics_address, addr("10.0.0.1:9100"));
    assert_eq!(c.pprof_address, addr("127.0.0.1:6060"));
    // Each toggle is its own key: turning one off leaves the others alone.
    let c = parse("metrics: no\n");
    assert!(c.api && !c.metrics && c.pprof);
    let c = parse("api: yes\npprof: true\n");
    assert!(c.api && c.pprof);

    let e = refuse("rtsp: yes\napiAddress: 9997\n");
    assert_mentions(&e, &["line 2", "apiAddress", "missing ':'"]);
    let e = refuse("metrics: maybe\n");
    assert_mentions(&e, &["metrics:", "expected a boolean", "line 1"]);
    let e = refuse("metricsAddress: '[::1]'\n");
    assert_mentions(&e, &["metricsAddress", "port"]);
    let e = refuse("pprofAddress: 1.2.3.4:99999\n");
    assert_mentions(&e, &["pprofAddress", "invalid port"]);
    let e = refuse("pprof: [yes]\n");
    assert_mentions(&e, &["pprof:", "expected a boolean"]);
    let e = refuse("api: yes\napi: no\n");
    assert_mentions(&e, &["line 2", "duplicate key \"api\""]);
}

#[test]
fn the_rest_of_the_api_metrics_and_pprof_families_stays_refused() {
    for key in [
        "apiEncryption: no",
        "apiServerKey: server.key",
        "apiServerCert: server.crt",
        "apiAllowOrigin: '*'",
        "apiTrustedProxies: []",
        "metricsEncryption: no",
        "metricsServerKey: server.key",
        "pprofEncryption: no",
        "pprofTrustedProxies: []",
        "playbackAddress: :9996",
    ] {
        let e = refuse(&format!("api: yes\n{key}\n"));
        let name = key.split(':').next().unwrap_or_default();
        assert_mentions(
            &e,
            &[&format!("{name:?}"), "not supported by hubcast", "line 2"],
        );
    }
    for key in [
        "sourceFingerprint: abc",
        "sourceRedirect: rtsp://x/y",
        "sourceProtocol: tcp",
        "sourceAnyPortEnable: no",
        "rtspAnyPort: no",
        "rtspRangeType: clock",
        "rtspUDPSourcePortRange: [10000, 65535]",
    ] {
        let e = refuse(&format!("paths:\n  cam:\n    {key}\n"));
        let name = key.split(':').next().unwrap_or_default();
        assert_mentions(
            &e,
            &[
                "paths.cam",
                &format!("{name:?}"),
                "not supported by hubcast",
                "line 3",
            ],
        );
    }
}

#[test]
fn accepted_keys_are_never_refused_as_unsupported() {
    for (name, _) in TOP_SECTION.keys {
        assert!(!unsupported_top_key(name), "{name}");
        assert!(TOP_SECTION.lookup(name).is_ok(), "{name}");
    }
    for (name, _) in PATH_SECTION.keys {
        assert!(!unsupported_path_key(name), "{name}");
        assert!(PATH_SECTION.lookup(name).is_ok(), "{name}");
    }
}

#[test]
fn webrtc_max_sessions_is_a_count() {
    assert_eq!(parse("webrtcMaxSessions: 25").webrtc_max_sessions, 25);
    assert_eq!(parse("webrtcMaxSessions: 0").webrtc_max_sessions, 0);
    assert_eq!(parse("webrtcMaxSessions:").webrtc_max_sessions, 0);
    let e = refuse("webrtc: yes\nwebrtcMaxSessions: -1\n");
    assert_mentions(&e, &["line 2", "webrtcMaxSessions", ">= 0"]);
    let e = refuse("webrtcMaxSessions: many\n");
    assert_mentions(&e, &["webrtcMaxSessions", ">= 0"]);
    let e = refuse("webrtcMaxSesions: 3\n");
    assert_mentions(&e, &["did you mean \"webrtcMaxSessions\"?"]);
}

#[test]
fn rtsp_source_urls_are_accepted() {
    for url in [
        "rtsp://cam.local/live",
        "rtsp://admin:p%40ss@10.0.0.1:8554/live/ch1",
        "rtsp://admin:a:b@c@10.0.0.1/x",
        "rtsp://viewer@cam.local:554",
        "rtsps://[::1]:322/",
        "rtsps://[fe80::1]/stream",
        "rtsp://10.0.0.1",
        "rtsp://cam.local?channel=1&subtype=0",
    ] {
        let c = parse(&format!("paths:\n  cam:\n    source: '{url}'\n"));
        let cam = c.path_conf("cam");
        assert_eq!(cam.and_then(PathConf::source_url), Some(url), "{url}");
        assert_eq!(c.pulled_paths().len(), 1, "{url}");
    }
    let c = parse("paths:\n  cam:\n    source: publisher\n  other:\n    source:\n");
    assert!(c.pulled_paths().is_empty());
    assert_eq!(
        c.path_conf("other").map(|p| p.source.as_str()),
        Some("publisher")
    );
}

#[test]
fn bad_source_urls_are_refused_with_the_key() {
    for (bad, why) in [
        ("rtsp://", "missing host"),
        ("rtsp:///live", "missing host"),
        ("rtsp://user:pw@/live", "missing host"),
        ("rtsp://:554/live", "missing host"),
        ("rtsp://cam:port/x", "invalid port \"port\""),
        ("rtsp://cam:70000/x", "invalid port \"70000\""),
        ("rtsp://cam:0/x", "expected 1 to 65535"),
        ("rtsp://cam:/x", "invalid port \"\""),
        ("rtsp://cam:+5/x", "invalid port"),
        ("rtsp://bad_host/x", "not an IP address or host name"),
        ("rtsp://::1/x", "brackets"),
        ("rtsp://[zz]:554/x", "not an IPv6 address"),
        ("rtsp://[::1/x", "missing ']'"),
        ("rtsp://[::1]x/y", "after ']'"),
        ("rtsp://cam/a b", "character ' '"),
        ("rtsp://:pw@cam/x", "empty user name"),
        ("RTSP://cam/x", "lower case"),
        ("rtsp:/cam/x", "invalid source"),
        ("foo", "invalid source \"foo\""),
        ("cam.local:554", "invalid source"),
        ("''", "invalid source \"\""),
    ] {
        let e = refuse(&format!("paths:\n  cam:\n    source: {bad}\n"));
        assert_mentions(&e, &["line 3", "paths.cam.source", why]);
        assert!(!e.contains("not supported"), "{e}");
    }
    let e = refuse("paths:\n  cam:\n    source: [rtsp://cam/x]\n");
    assert_mentions(&e, &["paths.cam.source", "rtsp:// or rtsps:// URL"]);
}

#[test]
fn passwords_are_kept_out_of_source_errors() {
    let e = refuse("paths:\n  cam:\n    source: rtsp://admin:hunter2@cam:99999/x\n");
    assert_mentions(&e, &["invalid port", "admin:***@cam:99999/x"]);
    assert!(!e.contains("hunter2"), "{e}");
    let e = refuse("paths:\n  cam:\n    source: 'rt sp://admin:hunter2@cam/x'\n");
    assert!(!e.contains("hunter2"), "{e}");
    assert_eq!(redact_password("rtsp://cam/a:b@c"), "rtsp://cam/a:b@c");
    assert_eq!(redact_password("rtsp://u@cam/x"), "rtsp://u@cam/x");
}

#[test]
fn other_source_kinds_are_not_supported_by_hubcast() {
    for (bad, shown) in [
        ("rtmp://10.0.0.1/live", "\"rtmp://\""),
        ("rtmps://10.0.0.1/live", "\"rtmps://\""),
        ("'srt://10.0.0.1:9000?streamid=read:cam'", "\"srt://\""),
        ("udp://238.0.0.1:1234", "\"udp://\""),
        ("http://cam/stream.m3u8", "\"http://\""),
        ("https://cam/stream.m3u8", "\"https://\""),
        ("whep://cam/live/whep", "\"whep://\""),
        ("redirect", "\"redirect\""),
        ("rpiCamera", "\"rpiCamera\""),
    ] {
        let e = refuse(&format!("paths:\n  cam:\n    source: {bad}\n"));
        assert_mentions(
            &e,
            &[
                "line 3",
                "paths.cam.source",
                shown,
                "not supported by hubcast",
            ],
        );
    }
}

#[test]
fn a_pulled_source_needs_a_path_with_a_fixed_name() {
    let fixed = "a pulled source needs a path with a fixed name";
    let e = refuse("paths:\n  cam:\n  ~^cam([0-9]+)$:\n    source: rtsp://10.0.0.1/cam$G1\n");
    assert_mentions(&e, &["line 4", "paths.~^cam([0-9]+)$.source", fixed, "$G1"]);
    for name in ["all_others", "all"] {
        let e = refuse(&format!(
            "paths:\n  {name}:\n    source: rtsp://10.0.0.1/live\n"
        ));
        assert_mentions(
            &e,
            &[
                "line 3",
                &format!("paths.{name}.source"),
                fixed,
                "every other path",
            ],
        );
    }
    let e = refuse("rtsp: yes\npathDefaults:\n  source: rtsp://10.0.0.1/live\n");
    assert_mentions(&e, &["line 3", "pathDefaults.source", fixed]);
    // "publisher" stays fine everywhere, and the other source keys may be set anywhere.
    let c = parse(
        "pathDefaults:\n  source: publisher\n  sourceOnDemand: yes\n\
             paths:\n  ~^cam.*$:\n    source: publisher\n  all_others:\n    source: publisher\n",
    );
    assert!(c.pulled_paths().is_empty());
    // An unsupported kind is reported as such even where no URL could go.
    let e = refuse("paths:\n  all_others:\n    source: rtmp://x/y\n");
    assert_mentions(&e, &["not supported by hubcast"]);
}

#[test]
fn pulled_paths_are_fixed_names_with_url_sources_in_file_order() {
    let c = parse(
        "pathDefaults:\n  sourceOnDemand: yes\n  rtspTransport: tcp\n\
             paths:\n  zeta:\n    source: rtsp://10.0.0.2/b\n  alpha:\n  \
             ~^x.*$:\n  mid:\n    source: rtsps://cam.example.com/c\n    sourceOnDemand: no\n  \
             all_others:\n",
    );
    let pulled: Vec<(&str, Option<&str>, bool, SourceTransport)> = c
        .pulled_paths()
        .into_iter()
        .map(|(n, p)| (n, p.source_url(), p.source_on_demand, p.rtsp_transport))
        .collect();
    assert_eq!(
        pulled,
        [
            (
                "zeta",
                Some("rtsp://10.0.0.2/b"),
                true,
                SourceTransport::Tcp
            ),
            (
                "mid",
                Some("rtsps://cam.example.com/c"),
                false,
                SourceTransport::Tcp
            ),
        ]
    );
    assert_eq!(c.path_conf("alpha").and_then(PathConf::source_url), None);
}

#[test]
fn rtsp_transport_of_pulled_sources() {
    for (text, want) in [
        ("automatic", SourceTransport::Automatic),
        ("tcp", SourceTransport::Tcp),
        ("udp", SourceTransport::Udp),
    ] {
        let c = parse(&format!("paths:\n  cam:\n    rtspTransport: {text}\n"));
        assert_eq!(c.path_conf("cam").map(|p| p.rtsp_transport), Some(want));
        assert_eq!(want.as_str(), text);
        assert_eq!(want.to_string(), text);
    }
    let c = parse("pathDefaults:\n  rtspTransport: udp\npaths:\n  cam:\n    rtspTransport:\n");
    assert_eq!(
        c.path_conf("cam").map(|p| p.rtsp_transport),
        Some(SourceTransport::Udp)
    );
    let e = refuse("paths:\n  cam:\n    rtspTransport: multicast\n");
    assert_mentions(
        &e,
        &[
            "line 3",
            "paths.cam.rtspTransport",
            "\"multicast\" is not supported by hubcast",
        ],
    );
    let e = refuse("pathDefaults:\n  rtspTransport: quic\n");
    assert_mentions(
        &e,
        &[
            "pathDefaults.rtspTransport",
            "unknown RTSP transport \"quic\"",
            "automatic, tcp, udp",
        ],
    );
    let e = refuse("paths:\n  cam:\n    rtspTransport: [tcp]\n");
    assert_mentions(&e, &["paths.cam.rtspTransport", "automatic, tcp or udp"]);
}

#[test]
fn source_durations_name_their_key() {
    let c = parse(
        "paths:\n  cam:\n    sourceOnDemandStartTimeout: 1m30s\n    \
             sourceOnDemandCloseAfter: 500ms\n    sourceReconnectGrace: 0s\n  other:\n    \
             sourceReconnectGrace: 0\n",
    );
    let cam = c.path_conf("cam");
    assert_eq!(
        cam.map(|p| (
            p.source_on_demand_start_timeout,
            p.source_on_demand_close_after,
            p.source_reconnect_grace
        )),
        Some((
            Duration::from_secs(90),
            Duration::from_millis(500),
            Duration::ZERO
        ))
    );
    assert_eq!(
        c.path_conf("other").map(|p| p.source_reconnect_grace),
        Some(Duration::ZERO)
    );
    for (key, bad, why) in [
        ("sourceOnDemandStartTimeout", "0s", "greater than 0"),
        ("sourceOnDemandStartTimeout", "10", "use a unit"),
        ("sourceOnDemandCloseAfter", "0", "greater than 0"),
        ("sourceOnDemandCloseAfter", "10y", "unknown unit \"y\""),
        ("sourceReconnectGrace", "-1s", "negative"),
        ("sourceReconnectGrace", "soon", "invalid duration"),
        ("sourceReconnectGrace", "5", "missing unit"),
    ] {
        let e = refuse(&format!("paths:\n  cam:\n    {key}: {bad}\n"));
        assert_mentions(&e, &["line 3", &format!("paths.cam.{key}"), why]);
        let e = refuse(&format!("pathDefaults:\n  {key}: {bad}\n"));
        assert_mentions(&e, &["line 2", &format!("pathDefaults.{key}"), why]);
    }
    let e = refuse("paths:\n  cam:\n    sourceOnDemand: sometimes\n");
    assert_mentions(&e, &["paths.cam.sourceOnDemand", "expected a boolean"]);
}

#[test]
fn auth_method_and_urls() {
    for (text, want) in [
        ("internal", AuthMethod::Internal),
        ("http", AuthMethod::Http),
        ("jwt", AuthMethod::Jwt),
    ] {
        let c = parse(&format!(
            "authMethod: {text}\nauthHTTPAddress: http://a/b\nauthJWTJWKS: https://c/d\n"
        ));
        assert_eq!(c.auth_method, want);
        assert_eq!(want.to_string(), text);
    }
    let e = refuse("rtsp: yes\nauthMethod: ldap\n");
    assert_mentions(
        &e,
        &[
            "line 2",
            "authMethod",
            "unknown auth method \"ldap\"",
            "internal, http, jwt",
        ],
    );
    let e = refuse("authMethod: [internal]\n");
    assert_mentions(&e, &["authMethod", "internal, http or jwt"]);
    let e = refuse("authMethod: http\n");
    assert_mentions(&e, &["authMethod is \"http\"", "authHTTPAddress is empty"]);
    let e = refuse("authMethod: jwt\nauthJWTJWKS: ''\n");
    assert_mentions(&e, &["authMethod is \"jwt\"", "authJWTJWKS is empty"]);
    for (key, bad, why) in [
        (
            "authHTTPAddress",
            "localhost:9000/auth",
            "http:// or https://",
        ),
        ("authHTTPAddress", "ftp://x/auth", "http:// or https://"),
        ("authHTTPAddress", "not a url", "invalid URL"),
        ("authJWTJWKS", "'http://'", "invalid URL"),
        ("authJWTJWKS", "[http://a/b]", "an http:// or https:// URL"),
    ] {
        let e = refuse(&format!("rtsp: yes\n{key}: {bad}\n"));
        assert_mentions(&e, &["line 2", key, why]);
    }
    let e = refuse("authJWTClaimKey: ''\n");
    assert_mentions(&e, &["authJWTClaimKey", "must not be empty"]);
    assert_eq!(
        parse("authJWTClaimKey:\n").auth_jwt_claim_key,
        "mediamtx_permissions"
    );
    assert_eq!(parse("authHTTPAddress:\n").auth_http_address, "");
}

#[test]
fn auth_users_parse_like_mediamtx() {
    let c = parse(
        "authInternalUsers:\n\
             - user: bob\n  pass: 1234\n  ips: ['10.0.0.0/8', 192.168.1.7, '2001:db8::/32']\n  \
             permissions:\n  - action: publish\n    path: cam\n  - action: read\n    \
             path: '~^cam[0-9]$'\n  - action: api\n    path:\n  - metrics\n\
             - user: any\n  pass:\n  ips:\n  permissions:\n",
    );
    let bob = &c.auth_internal_users[0];
    assert_eq!(bob.user, "bob");
    assert_eq!(bob.pass, "1234");
    let ips: Vec<String> = bob.ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]);
    assert_eq!(
        bob.permissions,
        [
            Permission {
                action: AuthAction::Publish,
                path: Some("cam".into())
            },
            Permission {
                action: AuthAction::Read,
                path: Some("~^cam[0-9]$".into())
            },
            Permission::any_path(AuthAction::Api),
            Permission::any_path(AuthAction::Metrics),
        ]
    );
    let anyone = &c.auth_internal_users[1];
    assert_eq!((anyone.user.as_str(), anyone.pass.as_str()), ("any", ""));
    assert!(anyone.ips.is_empty() && anyone.permissions.is_empty());
    // An empty list is no user at all; the key absent is MediaMTX's default.
    assert!(parse("authInternalUsers: []\n")
        .auth_internal_users
        .is_empty());
    assert_eq!(
        parse("authInternalUsers:\n").auth_internal_users,
        Config::default().auth_internal_users
    );
    // The password never shows up in debug output.
    let debug = format!("{c:?}");
    assert!(!debug.contains("1234"), "{debug}");
    assert!(debug.contains("pass: \"***\""), "{debug}");
}

#[test]
fn hashed_credentials_are_checked() {
    let sha = "sha256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w=";
    let argon = "argon2:$argon2id$v=19$m=4096,t=3,p=1$MTIzNDU2Nzg$\
                     Ux/LWeTgJQPyfMMJo1myR64+o8rALHoPmlE1i/TR+58";
    for pass in [sha, argon] {
        let c = parse(&format!(
            "authInternalUsers:\n- user: bob\n  pass: '{pass}'\n  permissions: [read]\n"
        ));
        assert_eq!(c.auth_internal_users[0].pass, pass);
        let c = parse(&format!(
            "authInternalUsers:\n- user: '{pass}'\n  pass: x\n  permissions: [read]\n"
        ));
        assert_eq!(c.auth_internal_users[0].user, pass);
    }
    for (bad, why) in [
        ("sha256:", "base64 of a SHA-256 digest"),
        ("sha256:hunter2", "base64 of a SHA-256 digest"),
        ("sha256:aHVudGVyMg==", "base64 of a SHA-256 digest"),
        (
            "SHA256:E9JJ8stBJ7QM+nV4ZoUCeHk/gU3tPFh/5YieiJp6n2w=",
            "lower case",
        ),
        ("argon2:hunter2", "Argon2 PHC string"),
        (
            "argon2:$argon2id$v=19$m=4096,t=3,p=1$MTIzNDU2Nzg",
            "Argon2 PHC string",
        ),
        (
            "argon2:$pbkdf2$i=1000$MTIzNDU2Nzg$aGFzaGhhc2g",
            "Argon2 PHC string",
        ),
        (
            "argon2:$argon2id$v=19$m=1,t=0,p=1$MTIzNDU2Nzg$aGFzaGhhc2g",
            "Argon2 PHC string",
        ),
        (
            "Argon2:$argon2id$v=19$m=4096,t=3,p=1$MTIzNDU2Nzg$aGFzaGhhc2g",
            "lower case",
        ),
    ] {
        let e = refuse(&format!(
            "rtsp: yes\nauthInternalUsers:\n- user: bob\n  pass: '{bad}'\n"
        ));
        assert_mentions(&e, &["line 4", "authInternalUsers[0].pass", why]);
        // A password never appears in the message, not even a malformed hash.
        assert!(!e.contains("hunter2") && !e.contains("aGFzaGhhc2g"), "{e}");
        let e = refuse(&format!("authInternalUsers:\n- user: '{bad}'\n"));
        assert_mentions(&e, &["line 2", "authInternalUsers[0].user", why]);
    }
}

#[test]
fn broken_auth_users_name_the_key() {
    for (yaml, parts) in [
        (
            "- user: bob\n  ips: [10.0.0.0/33]\n",
            &["line 3", "authInternalUsers[0].ips[0]", "\"10.0.0.0/33\""][..],
        ),
        (
            "- user: any\n- user: bob\n  ips: [10.0.0.0/8, not-an-ip]\n",
            &[
                "line 4",
                "authInternalUsers[1].ips[1]",
                "invalid IP address",
            ],
        ),
        (
            "- user: bob\n  permissions:\n  - action: write\n",
            &[
                "line 4",
                "authInternalUsers[0].permissions[0].action",
                "unknown action \"write\"",
                "publish, read, playback, api, metrics, pprof",
            ],
        ),
        (
            "- user: bob\n  permissions: [publish, delete]\n",
            &[
                "line 3",
                "authInternalUsers[0].permissions[1]",
                "unknown action \"delete\"",
            ],
        ),
        (
            "- user: bob\n  permissions:\n  - path: cam\n",
            &[
                "authInternalUsers[0].permissions[0]",
                "missing key \"action\"",
            ],
        ),
        (
            "- user: bob\n  permissions:\n  - action: read\n    path: 'a//b'\n",
            &[
                "line 5",
                "authInternalUsers[0].permissions[0].path",
                "empty segment",
            ],
        ),
        (
            "- user: bob\n  permissions:\n  - action: read\n    path: '~^(cam'\n",
            &[
                "line 5",
                "permissions[0].path",
                "invalid regular expression",
            ],
        ),
        (
            "- user: bob\n  permissions:\n  - action: api\n    path: cam\n",
            &["permissions[0]", "does not concern a path"],
        ),
        (
            "- user: bob\n  permissions:\n  - action: read\n    paths: cam\n",
            &["line 5", "unknown key \"paths\"", "did you mean \"path\"?"],
        ),
        (
            "- user: bob\n  password: x\n",
            &["line 3", "authInternalUsers[0]", "unknown key \"password\""],
        ),
        (
            "- user: bob\n  user: alice\n",
            &["line 3", "duplicate key \"user\""],
        ),
        (
            "- pass: x\n",
            &["authInternalUsers[0]", "missing key \"user\""],
        ),
        (
            "- user: ''\n",
            &["authInternalUsers[0].user", "must not be empty"],
        ),
        (
            "- user: any\n  pass: secret\n",
            &["authInternalUsers[0]", "would never be checked"],
        ),
        ("  bob\n", &["authInternalUsers", "sequence"]),
    ] {
        let e = refuse(&format!("authInternalUsers:\n{yaml}"));
        assert_mentions(&e, parts);
    }
    let e = refuse("authHTTPExclude:\n- action: playbacks\n");
    assert_mentions(
        &e,
        &["line 2", "authHTTPExclude[0].action", "unknown action"],
    );
    let e = refuse("authJWTExclude: [api, nope]\n");
    assert_mentions(&e, &["authJWTExclude[1]", "unknown action \"nope\""]);
    let e = refuse("authHTTPExclude: api\n");
    assert_mentions(&e, &["authHTTPExclude", "sequence"]);
}

#[test]
fn auth_excludes_parse() {
    let c = parse(
        "authHTTPExclude:\n- action: read\n  path: public\n- api\nauthJWTExclude:\n\
             - action: playback\n",
    );
    assert_eq!(
        c.auth_http_exclude,
        [
            Permission {
                action: AuthAction::Read,
                path: Some("public".into())
            },
            Permission::any_path(AuthAction::Api)
        ]
    );
    assert_eq!(
        c.auth_jwt_exclude,
        [Permission::any_path(AuthAction::Playback)]
    );
    assert!(parse("authHTTPExclude: []\n").auth_http_exclude.is_empty());
    assert_eq!(
        parse("authHTTPExclude:\n").auth_http_exclude,
        Config::default().auth_http_exclude
    );
}

#[test]
fn auth_keys_hubcast_does_not_implement_stay_refused() {
    for key in [
        "authJWTInHTTPQuery: no",
        "authJWTIssuer: x",
        "authJWTAudience: x",
        "authJWTJWKSFingerprint: x",
        "rtspAuthMethods: [basic]",
        "externalAuthenticationURL: http://x",
    ] {
        let e = refuse(&format!("rtsp: yes\n{key}\n"));
        let name = key.split(':').next().unwrap_or_default();
        assert_mentions(
            &e,
            &[&format!("{name:?}"), "not supported by hubcast", "line 2"],
        );
    }
    for key in ["authMetod: jwt", "authHttpAddress: http://x"] {
        let e = refuse(key);
        assert_mentions(&e, &["did you mean"]);
    }
}
