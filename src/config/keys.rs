//! The keys of each section of the file, with the MediaMTX keys hubcast refuses by name
//! and the closest known key for a typo.

// ---------------------------------------------------------------------------------------------
// Keys: every section lists what it accepts; anything else is refused where it is written.

/// The keys of one YAML mapping: the accepted ones, and a test for MediaMTX keys that hubcast
/// knows about but does not implement (so the error can say so instead of "unknown").
pub(super) struct Section<K: 'static> {
    pub(super) keys: &'static [(&'static str, K)],
    pub(super) unsupported: fn(&str) -> bool,
}

impl<K: Copy> Section<K> {
    pub(super) fn lookup(&self, key: &str) -> Result<K, String> {
        if let Some((_, k)) = self.keys.iter().find(|(n, _)| *n == key) {
            return Ok(*k);
        }
        if (self.unsupported)(key) {
            return Err(format!(
                "key {key:?} is not supported by hubcast (remove it)"
            ));
        }
        let names = self.keys.iter().map(|(n, _)| *n);
        Err(match closest_name(key, names) {
            Some(s) => format!("unknown key {key:?} (did you mean {s:?}?)"),
            None => format!("unknown key {key:?}"),
        })
    }
}

/// The accepted name nearest to a typo, if it is close enough (edit distance <= 2, ignoring case)
/// to be a plausible slip rather than a different key altogether.
pub(super) fn closest_name<'a>(
    typo: &str,
    names: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let typo = typo.to_ascii_lowercase();
    names
        .map(|n| (edit_distance(&typo, &n.to_ascii_lowercase()), n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance over chars.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// `key` is `family` itself or `family` followed by a camelCase word ("hls", "hlsAddress").
pub(super) fn in_family(key: &str, family: &str) -> bool {
    key.strip_prefix(family)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase()))
}

pub(super) fn unsupported_top_key(key: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "api",
        "metrics",
        "pprof",
        "playback",
        "hls",
        "rtmp",
        "srt",
        "record",
        "auth",
        "runOn",
        "multicast",
    ];
    const KEYS: &[&str] = &[
        "logDestinations",
        "logStructured",
        "logFile",
        "sysLogPrefix",
        "udpMaxPayloadSize",
        "udpReadBufferSize",
        "readBufferCount",
        "externalAuthenticationURL",
        "protocols",
        "encryption",
        "serverKey",
        "serverCert",
        "rtspDisable",
        "rtspEncryption",
        "rtspsAddress",
        "rtspServerKey",
        "rtspServerCert",
        "rtspAuthMethods",
        "rtspUDPReadBufferSize",
        "srtpAddress",
        "srtcpAddress",
        "webrtcDisable",
        "webrtcEncryption",
        "webrtcServerKey",
        "webrtcServerCert",
        "webrtcTrustedProxies",
        "webrtcLocalTCPAddress",
        "webrtcIPsFromInterfaces",
        "webrtcIPsFromInterfacesList",
        "webrtcSTUNGatherTimeout",
        "webrtcTrackGatherTimeout",
        "webrtcICEServers",
        "webrtcICEHostNAT1To1IPs",
        "webrtcICEUDPMuxAddress",
        "webrtcICETCPMuxAddress",
    ];
    // Families hubcast implements in part (api, metrics, pprof, auth): the rest of them stays
    // refused, but a near miss of an accepted key ("authMetod") is a typo, not a MediaMTX key.
    let accepted = TOP_SECTION.keys.iter().any(|(n, _)| *n == key);
    let family = FAMILIES.iter().find(|f| in_family(key, f));
    let typo = family.is_some_and(|f| {
        let siblings = TOP_SECTION.keys.iter().map(|(n, _)| *n);
        closest_name(key, siblings.filter(|n| in_family(n, f))).is_some()
    });
    KEYS.contains(&key) || (!accepted && !typo && family.is_some())
}

pub(super) fn unsupported_path_key(key: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "record",
        "rpiCamera",
        "runOn",
        "alwaysAvailable",
        "whep",
        "rtsp",
        "srt",
        "publish",
        "read",
    ];
    const KEYS: &[&str] = &[
        "sourceFingerprint",
        "sourceRedirect",
        "sourceProtocol",
        "sourceAnyPortEnable",
        "fallback",
        "useAbsoluteTimestamp",
        "rtpSDP",
        "disablePublisherOverride",
    ];
    // The rtsp family is implemented in part (rtspTransport): the rest of it stays refused.
    let accepted = PATH_SECTION.keys.iter().any(|(n, _)| *n == key);
    KEYS.contains(&key) || (!accepted && FAMILIES.iter().any(|f| in_family(key, f)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TopKey {
    LogLevel,
    ReadTimeout,
    WriteTimeout,
    WriteQueueSize,
    Api,
    ApiAddress,
    Metrics,
    MetricsAddress,
    Pprof,
    PprofAddress,
    Rtsp,
    RtspTransports,
    RtspAddress,
    RtpAddress,
    RtcpAddress,
    Webrtc,
    WebrtcAddress,
    WebrtcLocalUdpAddress,
    WebrtcAdditionalHosts,
    WebrtcIceServers2,
    WebrtcHandshakeTimeout,
    WebrtcAllowOrigin,
    WebrtcAllowOrigins,
    WebrtcSrtpProfiles,
    WebrtcMaxSessions,
    AuthMethod,
    AuthInternalUsers,
    AuthHttpAddress,
    AuthHttpExclude,
    AuthJwtJwks,
    AuthJwtClaimKey,
    AuthJwtExclude,
    PathDefaults,
    Paths,
}

pub(super) const TOP_SECTION: Section<TopKey> = Section {
    keys: &[
        ("logLevel", TopKey::LogLevel),
        ("readTimeout", TopKey::ReadTimeout),
        ("writeTimeout", TopKey::WriteTimeout),
        ("writeQueueSize", TopKey::WriteQueueSize),
        ("api", TopKey::Api),
        ("apiAddress", TopKey::ApiAddress),
        ("metrics", TopKey::Metrics),
        ("metricsAddress", TopKey::MetricsAddress),
        ("pprof", TopKey::Pprof),
        ("pprofAddress", TopKey::PprofAddress),
        ("rtsp", TopKey::Rtsp),
        ("rtspTransports", TopKey::RtspTransports),
        ("rtspAddress", TopKey::RtspAddress),
        ("rtpAddress", TopKey::RtpAddress),
        ("rtcpAddress", TopKey::RtcpAddress),
        ("webrtc", TopKey::Webrtc),
        ("webrtcAddress", TopKey::WebrtcAddress),
        ("webrtcLocalUDPAddress", TopKey::WebrtcLocalUdpAddress),
        ("webrtcAdditionalHosts", TopKey::WebrtcAdditionalHosts),
        ("webrtcICEServers2", TopKey::WebrtcIceServers2),
        ("webrtcHandshakeTimeout", TopKey::WebrtcHandshakeTimeout),
        ("webrtcAllowOrigin", TopKey::WebrtcAllowOrigin),
        ("webrtcAllowOrigins", TopKey::WebrtcAllowOrigins),
        ("webrtcSRTPProfiles", TopKey::WebrtcSrtpProfiles),
        ("webrtcMaxSessions", TopKey::WebrtcMaxSessions),
        ("authMethod", TopKey::AuthMethod),
        ("authInternalUsers", TopKey::AuthInternalUsers),
        ("authHTTPAddress", TopKey::AuthHttpAddress),
        ("authHTTPExclude", TopKey::AuthHttpExclude),
        ("authJWTJWKS", TopKey::AuthJwtJwks),
        ("authJWTClaimKey", TopKey::AuthJwtClaimKey),
        ("authJWTExclude", TopKey::AuthJwtExclude),
        ("pathDefaults", TopKey::PathDefaults),
        ("paths", TopKey::Paths),
    ],
    unsupported: unsupported_top_key,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathKey {
    Source,
    SourceOnDemand,
    SourceOnDemandStartTimeout,
    SourceOnDemandCloseAfter,
    SourceReconnectGrace,
    RtspTransport,
    OverridePublisher,
    MaxReaders,
}

pub(super) const PATH_SECTION: Section<PathKey> = Section {
    keys: &[
        ("source", PathKey::Source),
        ("sourceOnDemand", PathKey::SourceOnDemand),
        (
            "sourceOnDemandStartTimeout",
            PathKey::SourceOnDemandStartTimeout,
        ),
        (
            "sourceOnDemandCloseAfter",
            PathKey::SourceOnDemandCloseAfter,
        ),
        ("sourceReconnectGrace", PathKey::SourceReconnectGrace),
        ("rtspTransport", PathKey::RtspTransport),
        ("overridePublisher", PathKey::OverridePublisher),
        ("maxReaders", PathKey::MaxReaders),
    ],
    unsupported: unsupported_path_key,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IceKey {
    Url,
    Username,
    Password,
}

pub(super) const ICE_SECTION: Section<IceKey> = Section {
    keys: &[
        ("url", IceKey::Url),
        ("username", IceKey::Username),
        ("password", IceKey::Password),
    ],
    unsupported: |key| key == "clientOnly",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UserKey {
    User,
    Pass,
    Ips,
    Permissions,
}

pub(super) const USER_SECTION: Section<UserKey> = Section {
    keys: &[
        ("user", UserKey::User),
        ("pass", UserKey::Pass),
        ("ips", UserKey::Ips),
        ("permissions", UserKey::Permissions),
    ],
    unsupported: |_| false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PermissionKey {
    Action,
    Path,
}

pub(super) const PERMISSION_SECTION: Section<PermissionKey> = Section {
    keys: &[
        ("action", PermissionKey::Action),
        ("path", PermissionKey::Path),
    ],
    unsupported: |_| false,
};
