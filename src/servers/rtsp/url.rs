//! The URLs of an RTSP session: the path a request names, its control suffix, and the
//! media a SETUP URL sets up.

use crate::codec::sdp::MediaDesc;

/// Resolves a SETUP URL to the index of the media it sets up.
///
/// Clients send the absolute control URL, the base URL joined with a relative
/// control, or the bare control; a single-media session may also be set up
/// with the aggregate (base) URL itself.
pub fn match_control(medias: &[MediaDesc], base_url: &str, setup_url: &str) -> Option<usize> {
    let setup = setup_url.trim().trim_end_matches('/');
    let base = base_url.trim().trim_end_matches('/');
    let by_control = medias.iter().position(|m| {
        m.control
            .as_deref()
            .is_some_and(|control| control_matches(control, base, setup))
    });
    if by_control.is_some() {
        return by_control;
    }
    let is_aggregate = same_resource(setup, base);
    (medias.len() == 1 && is_aggregate).then_some(0)
}

fn control_matches(control: &str, base: &str, setup: &str) -> bool {
    let control = control.trim_end_matches('/');
    if control.is_empty() || control == "*" {
        return false;
    }
    if setup == control {
        return true;
    }
    if is_rtsp_url(control) {
        return same_resource(setup, control);
    }
    // Relative control: the rest of the SETUP URL must be the base. Clients
    // that connected with a query append the control after it
    // ("rtsp://h/cam?token=x/trackID=0"), so compare strings, not paths.
    let control = control.trim_start_matches('/');
    match setup.strip_suffix(control) {
        Some(prefix) => match prefix.strip_suffix('/') {
            Some(prefix) => same_resource(prefix, base),
            None => false,
        },
        None => false,
    }
}

/// Two URLs name the same resource if they are equal, or equal after the
/// scheme and authority: a client may reach us under another host name or
/// address than the one the publisher used.
fn same_resource(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    let b = b.trim_end_matches('/');
    if a == b {
        return true;
    }
    match (after_authority(a), after_authority(b)) {
        (Some(a), Some(b)) => a.trim_end_matches('/') == b.trim_end_matches('/'),
        _ => false,
    }
}

fn is_rtsp_url(url: &str) -> bool {
    strip_rtsp_scheme(url).is_some()
}

fn strip_rtsp_scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    (scheme.eq_ignore_ascii_case("rtsp") || scheme.eq_ignore_ascii_case("rtsps")).then_some(rest)
}

/// Path and query of an rtsp URL, without the leading '/'; "" if none.
fn after_authority(url: &str) -> Option<&str> {
    let rest = strip_rtsp_scheme(url)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let tail = &rest[end..];
    Some(tail.strip_prefix('/').unwrap_or(tail))
}

/// The path name of an rtsp URL: "rtsp://host[:port]/a/b?query" -> "a/b".
/// `None` for other schemes or a URL without a path.
pub fn path_of_url(url: &str) -> Option<String> {
    let tail = after_authority(url.trim())?;
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_matches('/');
    (!path.is_empty()).then(|| path.to_string())
}

/// Splits a control suffix ("trackID=N", "streamid=N") off the last segment of
/// a path: "cam/trackID=0" -> ("cam", Some("trackID=0")).
pub fn split_control(path: &str) -> (String, Option<String>) {
    let path = path.trim_end_matches('/');
    let (head, last) = match path.rsplit_once('/') {
        Some((head, last)) => (head, last),
        None => ("", path),
    };
    if is_control_segment(last) {
        (head.to_string(), Some(last.to_string()))
    } else {
        (path.to_string(), None)
    }
}

fn is_control_segment(segment: &str) -> bool {
    ["trackid=", "streamid="].iter().any(|prefix| {
        segment
            .get(..prefix.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sdp::{build_describe, parse_media, MediaKind};

    const FFMPEG_SDP: &str = include_str!("../../../tests/data/captures/ffmpeg-x264-opus.sdp");
    const GSTREAMER_SDP: &str =
        include_str!("../../../tests/data/captures/gstreamer-h264-h265-pcmu-aac.sdp");

    fn desc(control: Option<&str>) -> MediaDesc {
        MediaDesc {
            kind: MediaKind::Video,
            payload_type: 96,
            codec: "H264".to_string(),
            clock_rate: 90000,
            channels: None,
            fmtp: vec![],
            control: control.map(str::to_string),
        }
    }

    #[test]
    fn match_control_forms() {
        let base = "rtsp://127.0.0.1:8554/cam";
        let medias = [desc(Some("trackID=0")), desc(Some("trackID=1"))];
        let cases = [
            ("rtsp://127.0.0.1:8554/cam/trackID=0", Some(0)),
            ("rtsp://127.0.0.1:8554/cam/trackID=1", Some(1)),
            ("rtsp://127.0.0.1:8554/cam/trackID=1/", Some(1)),
            ("trackID=1", Some(1)),
            // Another host name for the same server.
            ("rtsp://cam.example:8554/cam/trackID=1", Some(1)),
            ("rtsp://127.0.0.1:8554/cam/trackID=2", None),
            ("rtsp://127.0.0.1:8554/cam/trackID=11", None),
            ("rtsp://127.0.0.1:8554/other/trackID=0", None),
            ("rtsp://127.0.0.1:8554/cam", None),
        ];
        for (setup, want) in cases {
            assert_eq!(match_control(&medias, base, setup), want, "{setup}");
        }
        // A base given with a trailing slash.
        assert_eq!(
            match_control(&medias, "rtsp://h/cam/", "rtsp://h/cam/trackID=1"),
            Some(1)
        );
        // ffmpeg appends the control after the query of the URL it was given.
        assert_eq!(
            match_control(
                &medias,
                "rtsp://h/cam?token=x",
                "rtsp://h/cam?token=x/trackID=1"
            ),
            Some(1)
        );
    }

    #[test]
    fn match_control_absolute_and_aggregate() {
        let base = "rtsp://192.168.1.10:8554/test";
        let medias = [
            desc(Some("rtsp://192.168.1.10:8554/test/stream=0")),
            desc(Some("rtsp://192.168.1.10:8554/test/stream=1")),
        ];
        assert_eq!(
            match_control(&medias, base, "rtsp://192.168.1.10:8554/test/stream=1"),
            Some(1)
        );
        assert_eq!(
            match_control(&medias, base, "rtsp://10.0.0.1/test/stream=0"),
            Some(0)
        );
        assert_eq!(match_control(&medias, base, base), None);

        let single = [desc(None)];
        assert_eq!(match_control(&single, base, base), Some(0));
        assert_eq!(
            match_control(&single, base, "rtsp://192.168.1.10:8554/test/"),
            Some(0)
        );
        assert_eq!(
            match_control(&single, base, "rtsp://192.168.1.10:8554/zzz"),
            None
        );
        let single = [desc(Some("trackID=0"))];
        assert_eq!(match_control(&single, base, base), Some(0));
        assert_eq!(match_control(&[], base, base), None);
    }

    #[test]
    fn path_and_control_helpers() {
        assert_eq!(
            path_of_url("rtsp://host:8554/a/b?query=1").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            path_of_url("rtsp://user:pw@host/cam/").as_deref(),
            Some("cam")
        );
        assert_eq!(path_of_url("RTSPS://host/cam#x").as_deref(), Some("cam"));
        assert_eq!(
            path_of_url("rtsp://host/cam/trackID=0").as_deref(),
            Some("cam/trackID=0")
        );
        assert_eq!(path_of_url("rtsp://host:8554"), None);
        assert_eq!(path_of_url("rtsp://host/"), None);
        assert_eq!(path_of_url("rtsp://host?x=1"), None);
        assert_eq!(path_of_url("http://host/cam"), None);
        assert_eq!(path_of_url("cam"), None);

        assert_eq!(
            split_control("cam/trackID=0"),
            ("cam".to_string(), Some("trackID=0".to_string()))
        );
        assert_eq!(
            split_control("a/b/streamid=1"),
            ("a/b".to_string(), Some("streamid=1".to_string()))
        );
        assert_eq!(split_control("a/b"), ("a/b".to_string(), None));
        assert_eq!(
            split_control("trackid=3"),
            (String::new(), Some("trackid=3".to_string()))
        );
        assert_eq!(split_control("a/track"), ("a/track".to_string(), None));
    }

    #[test]
    fn random_input_never_panics() {
        let samples: [&[u8]; 2] = [FFMPEG_SDP.as_bytes(), GSTREAMER_SDP.as_bytes()];
        let mut rng = crate::servers::rtsp::message::fuzz::XorShift(0xD1B5_4A32_D192_ED03);
        let mut parsed = 0;
        for _ in 0..10_000 {
            let body = rng.buffer(&samples);
            match parse_media(&body) {
                Ok(medias) => {
                    parsed += 1;
                    let _ = build_describe(&medias);
                    let _ = match_control(&medias, "rtsp://h/cam", "rtsp://h/cam/trackID=0");
                }
                Err(err) => {
                    let _ = err.to_string();
                }
            }
            let text = String::from_utf8_lossy(&body);
            let _ = path_of_url(&text);
            let _ = split_control(&text);
        }
        // Mutated samples must still parse often, or the fuzzing only ever
        // exercised the first error path.
        assert!(parsed > 500, "only {parsed} inputs parsed");
    }
}
