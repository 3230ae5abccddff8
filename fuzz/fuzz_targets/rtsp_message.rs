//! RTSP over TCP as the connection task sees it: bytes arrive in reads of any size, every
//! complete message is taken off the buffer, requests drive the SDP, Transport and URL
//! parsers the way ANNOUNCE / SETUP / DESCRIBE / PLAY do.
//!
//! Input: byte 0 picks the read size (0 = everything in one read), the rest is the stream.
//!
//! Checked besides "no panic":
//! - reading in chunks yields exactly the same messages as one big read;
//! - every Ok(Some) consumes bytes, every Ok(None) leaves the buffer as it was;
//! - a parsed Transport header printed with `to_header` parses back to the same spec;
//! - an SDP we build for DESCRIBE from parsed medias parses back to the same media count.
#![no_main]

use bytes::{Bytes, BytesMut};
use hubcast::codec::h264::ParamSets;
use hubcast::servers::rtsp::message::{self, Incoming, Method};
use hubcast::codec::sdp::{build_describe, parse_media};
use hubcast::servers::rtsp::url::{match_control, path_of_url, split_control};
use hubcast::servers::rtsp::transport::parse_transport;
use libfuzzer_sys::fuzz_target;

/// What a parsed message looked like, to compare whole vs chunked reads.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Request {
        method: String,
        uri: String,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    Interleaved {
        channel: u8,
        payload: Bytes,
    },
    Response {
        status: u16,
    },
    Error(String),
}

/// Parses everything `buf` holds, the way `Connection::run` loops after a read, with the
/// connection's parser (which remembers how far a pending head was searched).
fn drain(parser: &mut message::Parser, buf: &mut BytesMut, seen: &mut Vec<Seen>) -> bool {
    loop {
        let before = buf.clone();
        match parser.parse(buf) {
            Ok(Some(msg)) => {
                assert!(buf.len() < before.len(), "a message consumed no bytes");
                seen.push(match msg {
                    Incoming::Request(r) => Seen::Request {
                        method: r.method.to_string(),
                        uri: r.uri,
                        headers: r.headers,
                        body: r.body,
                    },
                    Incoming::Interleaved { channel, payload } => {
                        Seen::Interleaved { channel, payload }
                    }
                    Incoming::Response { status } => Seen::Response { status },
                });
            }
            Ok(None) => {
                // Only leading blank lines may be dropped while waiting for more.
                let dropped = before.len() - buf.len();
                assert!(before[..dropped].iter().all(|&b| b == b'\r' || b == b'\n'));
                assert_eq!(&before[dropped..], &buf[..]);
                return true;
            }
            Err(e) => {
                let _ = e.status();
                seen.push(Seen::Error(e.to_string()));
                // The connection answers 400/505 and closes.
                return false;
            }
        }
    }
}

/// What the connection does with the requests, minus the I/O.
#[derive(Default)]
struct Session {
    medias: Vec<hubcast::codec::sdp::MediaDesc>,
    base_url: String,
}

impl Session {
    fn request(&mut self, method: &str, uri: &str, headers: &[(String, String)], body: &[u8]) {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        // Every request's URL is looked at for the path name.
        if let Some(full) = path_of_url(uri) {
            assert!(!full.is_empty());
            let (path, control) = split_control(&full);
            if let Some(c) = control {
                assert!(!c.is_empty());
            }
            let _ = path;
        }
        let _ = split_control(uri);
        match Method::from_token(method) {
            Method::Announce => {
                if let Ok(medias) = parse_media(body) {
                    for m in &medias {
                        if let Some(s) = m.fmtp_param("sprop-parameter-sets") {
                            if let Ok(p) = ParamSets::from_sprop(s) {
                                let _ = p.resolution();
                                let _ = p.profile_level_id();
                                let _ = p.to_sprop();
                            }
                        }
                    }
                    check_describe_round_trip(&medias);
                    self.medias = medias;
                    self.base_url = uri.to_string();
                }
            }
            Method::Setup => {
                let _ = match_control(&self.medias, &self.base_url, uri);
                // Publishers that skipped ANNOUNCE (readers) and odd base URLs.
                let _ = match_control(&self.medias, uri, &self.base_url);
            }
            _ => {
                if !body.is_empty() {
                    // A body on any other request: still must not upset the SDP parser.
                    if let Ok(medias) = parse_media(body) {
                        let _ = match_control(&medias, uri, uri);
                    }
                }
            }
        }
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("Transport") {
                check_transport(value);
            }
        }
        let _ = header("CSeq");
    }
}

fn check_transport(value: &str) {
    let Ok(specs) = parse_transport(value) else {
        return;
    };
    assert!(!specs.is_empty());
    for spec in specs {
        let printed = spec.to_header();
        let back = parse_transport(&printed)
            .unwrap_or_else(|e| panic!("{printed:?} from {value:?} does not parse back: {e}"));
        assert_eq!(back, vec![spec], "{printed:?} from {value:?}");
    }
}

fn check_describe_round_trip(medias: &[hubcast::codec::sdp::MediaDesc]) {
    let text = build_describe(medias);
    match parse_media(text.as_bytes()) {
        Ok(again) => assert_eq!(again.len(), medias.len(), "{text}"),
        Err(e) => panic!("our DESCRIBE answer does not parse: {e}\n{text}"),
    }
    // The codec registry: at most one video and one audio track, and each track the
    // selection keeps is described back (as a reader's DESCRIBE would) to the same track.
    let sel = hubcast::codec::select_tracks(medias);
    assert_eq!(sel.media_to_track.len(), medias.len());
    assert!(sel.tracks.iter().filter(|t| t.is_video()).count() <= 1);
    assert!(sel.tracks.iter().filter(|t| !t.is_video()).count() <= 1);
    for t in &sel.tracks {
        let desc = hubcast::codec::sdp_for_track(t, 96);
        let again = hubcast::codec::track_from_sdp(&desc).map(|(t, _)| t);
        match (&t.codec, again) {
            // In-band parameter sets may differ from what was in the SDP; the codec holds.
            (hubcast::codec::Codec::H264(_), Ok(a)) => assert!(a.is_video()),
            (_, Ok(a)) => assert_eq!(&a, t),
            (_, Err(e)) => panic!("{t:?} describes to {desc:?}, which is refused: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };

    // One read holding everything.
    let mut whole = Vec::new();
    let mut buf = BytesMut::from(stream);
    drain(&mut message::Parser::default(), &mut buf, &mut whole);

    // Reads of `chunk` bytes, parsing after each like the connection does.
    let mut chunked = Vec::new();
    if chunk != 0 {
        let mut buf = BytesMut::new();
        let mut parser = message::Parser::default();
        for piece in stream.chunks(usize::from(chunk)) {
            buf.extend_from_slice(piece);
            if !drain(&mut parser, &mut buf, &mut chunked) {
                break;
            }
        }
        assert_eq!(whole, chunked, "chunk size {chunk} changes what is parsed");
    }

    let mut session = Session::default();
    for seen in &whole {
        if let Seen::Request {
            method,
            uri,
            headers,
            body,
        } = seen
        {
            session.request(method, uri, headers, body);
        }
    }
});
