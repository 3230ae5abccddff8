//! RTSP 1.0 (RFC 2326) messages as they travel on a TCP connection: requests,
//! responses to our own requests (keep-alives) and interleaved binary frames.
//!
//! The parser is incremental: the connection task appends whatever it read to
//! a `BytesMut` and calls [`parse`] until it returns `Ok(None)`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

/// Upper bound for the request/status line plus all headers, so a client
/// cannot make us buffer an endless header.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Upper bound for a message body (SDP of an ANNOUNCE, parameters).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The interleaved frame length is a u16, so this is the largest payload that
/// can be framed.
pub const MAX_INTERLEAVED_PAYLOAD: usize = u16::MAX as usize;

/// Size of the "$" + channel + u16 length prefix of an interleaved frame.
const INTERLEAVED_HEADER_LEN: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Options,
    Describe,
    Announce,
    Setup,
    Play,
    Record,
    Pause,
    Teardown,
    GetParameter,
    SetParameter,
    Other(String),
}

impl Method {
    /// Method names are case-sensitive (RFC 2326 6.1), so "play" is `Other`.
    pub fn from_token(token: &str) -> Method {
        match token {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "ANNOUNCE" => Method::Announce,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "RECORD" => Method::Record,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Announce => "ANNOUNCE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Record => "RECORD",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    /// In wire order; names keep the client's spelling.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    /// First header with that name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn cseq(&self) -> Option<&str> {
        self.header("CSeq")
    }

    /// The session id without parameters such as ";timeout=60", which some
    /// clients echo back from our SETUP answer.
    pub fn session(&self) -> Option<&str> {
        let value = self.header("Session")?;
        let id = value.split(';').next().unwrap_or("").trim();
        (!id.is_empty()).then_some(id)
    }
}

#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    /// "$" + channel + u16 big-endian length + payload (RFC 2326 10.12).
    Interleaved {
        channel: u8,
        payload: Bytes,
    },
    /// Clients may answer our own requests (keep-alives); the body is discarded.
    Response {
        status: u16,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    #[error("header section exceeds {limit} bytes")]
    HeaderTooLarge { limit: usize },
    #[error("body of {length} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge { length: usize, limit: usize },
    #[error("bad request line: {0}")]
    BadRequestLine(String),
    #[error("bad status line: {0}")]
    BadStatusLine(String),
    #[error("bad header: {0}")]
    BadHeader(String),
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
    #[error("unsupported RTSP version: {0}")]
    UnsupportedVersion(String),
}

impl RtspError {
    /// The status to answer with before closing the connection.
    pub fn status(&self) -> u16 {
        match self {
            RtspError::UnsupportedVersion(_) => 505,
            _ => 400,
        }
    }
}

/// Parses one message from the front of `buf`, removing its bytes.
///
/// Returns `Ok(None)` when more bytes are needed. After an error the caller is
/// expected to answer 400 (see [`RtspError::status`]) and close, so the buffer
/// is left as it is and no resynchronisation is attempted.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Incoming>, RtspError> {
    Parser::default().parse(buf)
}

/// [`parse`] for a connection's stream: remembers how far a pending head was searched, so
/// a header trickled in byte by byte costs linear time, not a rescan per read.
#[derive(Debug, Default)]
pub struct Parser {
    scanned: usize,
    /// Head parsed, body pending: the whole message's length. Until that many bytes are
    /// buffered a read costs nothing (the head is not parsed again per segment).
    need: Option<usize>,
}

impl Parser {
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, RtspError> {
        let before = buf.len();
        skip_blank_lines(buf);
        if buf.len() != before {
            self.scanned = 0;
        }
        if self.need.is_some_and(|n| buf.len() < n) {
            return Ok(None);
        }
        let r = match buf.first() {
            None => Ok(None),
            Some(b'$') => Ok(parse_interleaved(buf)),
            Some(_) => parse_text_message(buf, &mut self.scanned, &mut self.need),
        };
        if !matches!(r, Ok(None)) {
            self.scanned = 0;
            self.need = None;
        }
        r
    }

    /// Is part of a text message (a request head or its body) waiting for more bytes?
    pub fn pending_text(&self, buf: &[u8]) -> bool {
        buf.first().is_some_and(|&b| b != b'$')
    }
}

/// Some clients send a stray CRLF between messages (as a keep-alive or after
/// a body); it carries no meaning, so it is dropped rather than rejected.
fn skip_blank_lines(buf: &mut BytesMut) {
    let blank = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if blank > 0 {
        let _ = buf.split_to(blank);
    }
}

fn parse_interleaved(buf: &mut BytesMut) -> Option<Incoming> {
    if buf.len() < INTERLEAVED_HEADER_LEN {
        return None;
    }
    let channel = buf[1];
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if buf.len() < INTERLEAVED_HEADER_LEN + len {
        return None;
    }
    // Copied out, not split off: a slice would pin the whole read buffer (16 KiB and
    // more) for as long as readers and the GOP cache hold the packet.
    let payload =
        Bytes::copy_from_slice(&buf[INTERLEAVED_HEADER_LEN..INTERLEAVED_HEADER_LEN + len]);
    buf.advance(INTERLEAVED_HEADER_LEN + len);
    Some(Incoming::Interleaved { channel, payload })
}

/// What the first line of a text message turned out to be.
enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16 },
}

fn parse_text_message(
    buf: &mut BytesMut,
    scanned: &mut usize,
    need: &mut Option<usize>,
) -> Result<Option<Incoming>, RtspError> {
    let Some(head_len) = find_head_end(buf, scanned)? else {
        return Ok(None);
    };
    let (start, headers) = parse_head(&buf[..head_len])?;
    let body_len = content_length(&headers)?;
    if buf.len() < head_len + body_len {
        *need = Some(head_len + body_len);
        return Ok(None);
    }
    let _ = buf.split_to(head_len);
    let body = buf.split_to(body_len).freeze();
    Ok(Some(match start {
        StartLine::Request { method, uri } => Incoming::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response { status } => Incoming::Response { status },
    }))
}

/// Length of the head including the terminating empty line, or `None` while
/// it is incomplete. Errors as soon as the buffer holds more than
/// `MAX_HEADER_BYTES` without an end, so a slow endless header is cut early.
/// `scanned` is how much of `buf` earlier calls searched; it is advanced.
fn find_head_end(buf: &[u8], scanned: &mut usize) -> Result<Option<usize>, RtspError> {
    let searched = &buf[..buf.len().min(MAX_HEADER_BYTES)];
    for i in (*scanned).min(searched.len())..searched.len() {
        if searched[i] != b'\n' {
            continue;
        }
        // Bare "\n" line endings are accepted, so "\n\n" ends a head too; the head starts
        // after any blank lines, so a '\n' at its very start cannot occur.
        let empty_line = (i >= 1 && searched[i - 1] == b'\n')
            || (i >= 2 && searched[i - 1] == b'\r' && searched[i - 2] == b'\n');
        if empty_line {
            return Ok(Some(i + 1));
        }
    }
    *scanned = searched.len();
    if buf.len() > MAX_HEADER_BYTES {
        return Err(RtspError::HeaderTooLarge {
            limit: MAX_HEADER_BYTES,
        });
    }
    Ok(None)
}

type Headers = Vec<(String, String)>;

fn parse_head(head: &[u8]) -> Result<(StartLine, Headers), RtspError> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or_default();
    let start = parse_start_line(first)?;
    let mut headers: Headers = Vec::new();
    for line in lines {
        parse_header_line(line, &mut headers)?;
    }
    Ok((start, headers))
}

fn parse_start_line(line: &[u8]) -> Result<StartLine, RtspError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| RtspError::BadRequestLine(format!("not UTF-8: {}", escape(line))))?;
    if text.starts_with("RTSP/") {
        parse_status_line(text)
    } else {
        parse_request_line(text)
    }
}

fn parse_request_line(text: &str) -> Result<StartLine, RtspError> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let [method, uri, version] = parts[..] else {
        return Err(RtspError::BadRequestLine(format!(
            "expected METHOD URI RTSP/1.0, got {:?}",
            truncated(text)
        )));
    };
    if !is_token(method) {
        return Err(RtspError::BadRequestLine(format!(
            "invalid method {:?}",
            truncated(method)
        )));
    }
    check_version(version, || {
        RtspError::BadRequestLine(format!("{:?}", truncated(text)))
    })?;
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_string(),
    })
}

fn parse_status_line(text: &str) -> Result<StartLine, RtspError> {
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    check_version(version, || {
        RtspError::BadStatusLine(format!("{:?}", truncated(text)))
    })?;
    let code = parts.next().unwrap_or_default();
    let status = parse_status_code(code).ok_or_else(|| {
        RtspError::BadStatusLine(format!("invalid status code {:?}", truncated(code)))
    })?;
    Ok(StartLine::Response { status })
}

fn parse_status_code(code: &str) -> Option<u16> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

/// Only RTSP/1.0 is spoken; another RTSP version gets its own error so the
/// caller can answer 505, anything else (HTTP, garbage) is a malformed line.
fn check_version(version: &str, malformed: impl FnOnce() -> RtspError) -> Result<(), RtspError> {
    match version {
        "RTSP/1.0" => Ok(()),
        v if v.starts_with("RTSP/") => Err(RtspError::UnsupportedVersion(truncated(v))),
        _ => Err(malformed()),
    }
}

fn parse_header_line(line: &[u8], headers: &mut Headers) -> Result<(), RtspError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| RtspError::BadHeader(format!("not UTF-8: {}", escape(line))))?;
    // RFC 2326 keeps HTTP/1.1 line folding: leading whitespace continues the
    // previous header's value.
    if text.starts_with([' ', '\t']) {
        let Some((_, value)) = headers.last_mut() else {
            return Err(RtspError::BadHeader(format!(
                "continuation line without a header: {:?}",
                truncated(text)
            )));
        };
        value.push(' ');
        value.push_str(text.trim());
        return Ok(());
    }
    let Some((name, value)) = text.split_once(':') else {
        return Err(RtspError::BadHeader(format!(
            "missing ':' in {:?}",
            truncated(text)
        )));
    };
    let name = name.trim_end();
    if !is_token(name) {
        return Err(RtspError::BadHeader(format!(
            "invalid header name {:?}",
            truncated(name)
        )));
    }
    headers.push((name.to_string(), value.trim().to_string()));
    Ok(())
}

/// The body length announced by the headers; absent means no body.
fn content_length(headers: &Headers) -> Result<usize, RtspError> {
    let mut length: Option<usize> = None;
    for (_, value) in headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Content-Length"))
    {
        let parsed = parse_length(value)?;
        // Two different lengths make the message boundary ambiguous, which is
        // how request smuggling starts.
        if length.is_some_and(|l| l != parsed) {
            return Err(RtspError::BadContentLength(
                "conflicting Content-Length headers".to_string(),
            ));
        }
        length = Some(parsed);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Err(RtspError::BodyTooLarge {
            length,
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(length)
}

fn parse_length(value: &str) -> Result<usize, RtspError> {
    // `usize::from_str` would accept "+5"; only plain digits are valid.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RtspError::BadContentLength(format!(
            "{:?} is not a number",
            truncated(value)
        )));
    }
    // Digits that overflow usize are certainly too large a body.
    Ok(value.parse().unwrap_or(usize::MAX))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Error messages quote client input; keep them short.
fn truncated(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_string(),
    }
}

fn escape(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(40)];
    shown.escape_ascii().to_string()
}

pub struct Response {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            reason: reason_phrase(status),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Sets the body with its Content-Type and Content-Length, replacing any
    /// earlier ones.
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.headers.retain(|(k, _)| {
            !k.eq_ignore_ascii_case("Content-Type") && !k.eq_ignore_ascii_case("Content-Length")
        });
        self.headers
            .push(("Content-Type".to_string(), content_type.to_string()));
        self.headers
            .push(("Content-Length".to_string(), self.body.len().to_string()));
        self
    }

    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(128 + self.body.len());
        out.put_slice(format!("RTSP/1.0 {} {}\r\n", self.status, self.reason).as_bytes());
        for (k, v) in &self.headers {
            put_header(out, k, v);
        }
        // A body set through the public field must still be delimited, or the
        // client would read it as the next message.
        if !self.body.is_empty() && find_header(&self.headers, "Content-Length").is_none() {
            put_header(out, "Content-Length", &self.body.len().to_string());
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write_to(&mut out);
        out.freeze()
    }
}

/// Header values may echo client input (URLs, session ids); CR/LF in them
/// would let a client inject headers into our answer.
fn put_header(out: &mut BytesMut, name: &str, value: &str) {
    for part in [name, ": ", value] {
        for b in part.bytes() {
            out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
    }
    out.put_slice(b"\r\n");
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        459 => "Aggregate Operation Not Allowed",
        460 => "Only Aggregate Operation Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

/// Writes an interleaved frame header + payload.
///
/// A payload longer than [`MAX_INTERLEAVED_PAYLOAD`] cannot be framed; it is
/// dropped with a warning rather than written with a wrapped length, which
/// would desynchronise the client's parser for the rest of the connection.
pub fn write_interleaved(channel: u8, payload: &[u8], out: &mut BytesMut) {
    let Ok(len) = u16::try_from(payload.len()) else {
        tracing::warn!(
            channel,
            len = payload.len(),
            "dropping interleaved payload too large to frame"
        );
        return;
    };
    out.reserve(INTERLEAVED_HEADER_LEN + payload.len());
    out.put_u8(b'$');
    out.put_u8(channel);
    out.put_u16(len);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(bytes: &[u8]) -> BytesMut {
        BytesMut::from(bytes)
    }

    fn expect_request(incoming: Option<Incoming>) -> Request {
        match incoming {
            Some(Incoming::Request(req)) => req,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    const FFMPEG_SDP: &str = "v=0\r\n\
o=- 0 0 IN IP4 127.0.0.1\r\n\
s=No Name\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=tool:libavformat 61.1.100\r\n\
m=video 0 RTP/AVP 96\r\n\
b=AS:2000\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA; profile-level-id=64001F\r\n\
a=control:streamid=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
b=AS:128\r\n\
a=rtpmap:97 opus/48000/2\r\n\
a=fmtp:97 sprop-stereo=1\r\n\
a=control:streamid=1\r\n";

    fn ffmpeg_announce() -> String {
        format!(
            "ANNOUNCE rtsp://127.0.0.1:8554/cam RTSP/1.0\r\n\
Content-Type: application/sdp\r\n\
CSeq: 2\r\n\
User-Agent: Lavf61.1.100\r\n\
Content-Length: {}\r\n\
\r\n{}",
            FFMPEG_SDP.len(),
            FFMPEG_SDP
        )
    }

    #[test]
    fn trickled_requests_parse_as_whole_ones() {
        let raw = b"\r\nOPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\nANNOUNCE rtsp://h/cam RTSP/1.0\nCSeq: 2\nContent-Length: 3\n\nabc";
        let mut parser = Parser::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in raw {
            buf.extend_from_slice(&[*b]);
            while let Some(m) = parser.parse(&mut buf).expect("valid") {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        match &got[1] {
            Incoming::Request(r) => {
                assert_eq!(r.method, Method::Announce);
                assert_eq!(&r.body[..], b"abc");
            }
            other => panic!("{other:?}"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn parses_ffmpeg_announce_with_sdp_body() {
        let mut b = buf(ffmpeg_announce().as_bytes());
        let req = expect_request(parse(&mut b).unwrap());
        assert_eq!(req.method, Method::Announce);
        assert_eq!(req.uri, "rtsp://127.0.0.1:8554/cam");
        assert_eq!(req.cseq(), Some("2"));
        assert_eq!(req.header("content-type"), Some("application/sdp"));
        assert_eq!(req.header("USER-AGENT"), Some("Lavf61.1.100"));
        assert_eq!(&req.body[..], FFMPEG_SDP.as_bytes());
        assert!(b.is_empty());
    }

    #[test]
    fn parses_setup_requests_with_transport_and_session() {
        let raw = "SETUP rtsp://127.0.0.1:8554/cam/streamid=0 RTSP/1.0\r\n\
Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\
CSeq: 3\r\n\
\r\n\
SETUP rtsp://127.0.0.1:8554/cam/streamid=1 RTSP/1.0\r\n\
Transport: RTP/AVP;unicast;client_port=5000-5001;mode=record\r\n\
CSeq: 4\r\n\
Session: 12345678;timeout=60\r\n\
\r\n";
        let mut b = buf(raw.as_bytes());
        let first = expect_request(parse(&mut b).unwrap());
        assert_eq!(first.method, Method::Setup);
        assert_eq!(
            first.header("transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
        );
        assert_eq!(first.session(), None);
        let second = expect_request(parse(&mut b).unwrap());
        assert_eq!(second.uri, "rtsp://127.0.0.1:8554/cam/streamid=1");
        assert_eq!(second.cseq(), Some("4"));
        assert_eq!(second.session(), Some("12345678"));
        assert!(parse(&mut b).unwrap().is_none());
    }

    #[test]
    fn byte_by_byte_request_then_interleaved_frames() {
        let mut stream = Vec::new();
        stream.extend_from_slice(
            b"RECORD rtsp://h/cam RTSP/1.0\r\nCSeq: 5\r\nSession: abc\r\nRange: npt=0.000-\r\n\r\n",
        );
        let mut frames = BytesMut::new();
        write_interleaved(0, &[0x80, 0x60, 1, 2, 3], &mut frames);
        write_interleaved(1, &[0x81, 0xc8], &mut frames);
        write_interleaved(2, &[], &mut frames);
        stream.extend_from_slice(&frames);

        let mut b = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &stream {
            b.put_u8(byte);
            if let Some(msg) = parse(&mut b).unwrap() {
                got.push((msg, b.len()));
            }
        }
        assert_eq!(got.len(), 4, "{got:?}");
        match &got[0].0 {
            Incoming::Request(r) => {
                assert_eq!(r.method, Method::Record);
                assert_eq!(r.session(), Some("abc"));
            }
            other => panic!("{other:?}"),
        }
        let expected: [(u8, &[u8]); 3] =
            [(0, &[0x80, 0x60, 1, 2, 3]), (1, &[0x81, 0xc8]), (2, &[])];
        for ((msg, _), (ch, data)) in got[1..].iter().zip(expected) {
            match msg {
                Incoming::Interleaved { channel, payload } => {
                    assert_eq!(*channel, ch);
                    assert_eq!(&payload[..], data);
                }
                other => panic!("{other:?}"),
            }
        }
        // Each message was returned at the exact byte that completed it.
        assert!(got.iter().all(|(_, left)| *left == 0));
    }

    #[test]
    fn byte_by_byte_body_waits_for_content_length() {
        let raw = ffmpeg_announce();
        let mut b = BytesMut::new();
        for (i, &byte) in raw.as_bytes().iter().enumerate() {
            b.put_u8(byte);
            let res = parse(&mut b).unwrap();
            if i + 1 < raw.len() {
                assert!(res.is_none(), "message returned early at byte {i}");
            } else {
                let req = expect_request(res);
                assert_eq!(&req.body[..], FFMPEG_SDP.as_bytes());
            }
        }
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let raw = b"OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n\
DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n\
SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 5\r\n\r\nhello\
TEARDOWN rtsp://h/a RTSP/1.0\r\nCSeq: 4\r\n\r\nGET_PA";
        let mut b = buf(raw);
        let methods: Vec<(Method, String)> = std::iter::from_fn(|| parse(&mut b).unwrap())
            .map(|m| {
                let r = expect_request(Some(m));
                (r.method.clone(), r.cseq().unwrap_or_default().to_string())
            })
            .collect();
        assert_eq!(
            methods,
            vec![
                (Method::Options, "1".to_string()),
                (Method::Describe, "2".to_string()),
                (Method::SetParameter, "3".to_string()),
                (Method::Teardown, "4".to_string()),
            ]
        );
        assert_eq!(&b[..], b"GET_PA");
    }

    #[test]
    fn bare_lf_line_endings_and_folded_headers() {
        let raw = b"OPTIONS * RTSP/1.0\nCSeq: 7\nX-Long: part one\n  part two\n\n";
        let mut b = buf(raw);
        let req = expect_request(parse(&mut b).unwrap());
        assert_eq!(req.uri, "*");
        assert_eq!(req.cseq(), Some("7"));
        assert_eq!(req.header("x-long"), Some("part one part two"));
        assert!(b.is_empty());
    }

    #[test]
    fn unknown_method_is_other_and_stray_crlf_is_skipped() {
        let mut b = buf(b"\r\n\r\nFOO rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        let req = expect_request(parse(&mut b).unwrap());
        assert_eq!(req.method, Method::Other("FOO".to_string()));
        assert_eq!(req.method.to_string(), "FOO");
    }

    #[test]
    fn responses_to_keepalives_are_parsed_and_body_discarded() {
        let mut b =
            buf(b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: 3\r\n\r\nabc$\x00\x00\x01z");
        match parse(&mut b).unwrap() {
            Some(Incoming::Response { status }) => assert_eq!(status, 200),
            other => panic!("{other:?}"),
        }
        match parse(&mut b).unwrap() {
            Some(Incoming::Interleaved { channel, payload }) => {
                assert_eq!(channel, 0);
                assert_eq!(&payload[..], b"z");
            }
            other => panic!("{other:?}"),
        }
        let err = parse(&mut buf(b"RTSP/1.0 2x0 OK\r\n\r\n")).unwrap_err();
        assert!(matches!(err, RtspError::BadStatusLine(_)), "{err}");
    }

    #[test]
    fn interleaved_frame_split_across_reads() {
        let payload: Vec<u8> = (0..1400u32).map(|i| i as u8).collect();
        let mut frame = BytesMut::new();
        write_interleaved(3, &payload, &mut frame);
        assert_eq!(&frame[..4], &[b'$', 3, 0x05, 0x78]);

        let mut b = BytesMut::new();
        b.extend_from_slice(&frame[..2]);
        assert!(parse(&mut b).unwrap().is_none());
        b.extend_from_slice(&frame[2..700]);
        assert!(parse(&mut b).unwrap().is_none());
        assert_eq!(b.len(), 700, "incomplete frame must not be consumed");
        b.extend_from_slice(&frame[700..]);
        b.extend_from_slice(b"$\x01");
        match parse(&mut b).unwrap() {
            Some(Incoming::Interleaved {
                channel,
                payload: p,
            }) => {
                assert_eq!(channel, 3);
                assert_eq!(&p[..], &payload[..]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(&b[..], b"$\x01");
    }

    #[test]
    fn oversized_interleaved_payload_is_not_framed() {
        let mut out = BytesMut::new();
        write_interleaved(0, &vec![0u8; MAX_INTERLEAVED_PAYLOAD + 1], &mut out);
        assert!(out.is_empty());
        write_interleaved(0, &vec![0u8; MAX_INTERLEAVED_PAYLOAD], &mut out);
        assert_eq!(&out[..4], &[b'$', 0, 0xff, 0xff]);
    }

    #[test]
    fn garbage_request_line_is_rejected() {
        for raw in [
            &b"hello\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS rtsp://h/a\r\n\r\n",
            b"OPTIONS rtsp://h/a RTSP/1.0 extra\r\n\r\n",
            b"OPT(ONS rtsp://h/a RTSP/1.0\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",
        ] {
            let err = parse(&mut buf(raw)).unwrap_err();
            assert!(
                matches!(err, RtspError::BadRequestLine(_)),
                "{:?} -> {err:?}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn rtsp_2_is_unsupported_version() {
        let err = parse(&mut buf(b"OPTIONS rtsp://h/a RTSP/2.0\r\nCSeq: 1\r\n\r\n")).unwrap_err();
        assert!(matches!(err, RtspError::UnsupportedVersion(ref v) if v == "RTSP/2.0"));
        assert_eq!(err.status(), 505);
        assert!(err.to_string().contains("RTSP/2.0"));
    }

    #[test]
    fn header_without_colon_is_bad_header() {
        let err = parse(&mut buf(b"OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq 1\r\n\r\n")).unwrap_err();
        assert!(matches!(err, RtspError::BadHeader(_)), "{err:?}");
        assert!(err.to_string().contains("CSeq 1"));
        let err = parse(&mut buf(b"OPTIONS * RTSP/1.0\r\n : empty name\r\n\r\n")).unwrap_err();
        assert!(matches!(err, RtspError::BadHeader(_)), "{err:?}");
    }

    #[test]
    fn huge_header_is_rejected_once_past_the_limit() {
        let mut b = buf(b"OPTIONS rtsp://h/a RTSP/1.0\r\n");
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut fed = b.len();
        // Feed a 1 MB header in small reads, as a hostile client would.
        while fed < 1024 * 1024 {
            b.extend_from_slice(line);
            fed += line.len();
            let res = parse(&mut b);
            if b.len() <= MAX_HEADER_BYTES {
                assert!(matches!(res, Ok(None)), "at {} bytes: {res:?}", b.len());
            } else {
                let err = res.unwrap_err();
                assert!(
                    matches!(err, RtspError::HeaderTooLarge { limit } if limit == MAX_HEADER_BYTES)
                );
                assert!(fed < MAX_HEADER_BYTES + 2 * line.len());
                return;
            }
        }
        panic!("1 MB header was never rejected");
    }

    #[test]
    fn header_just_under_the_limit_is_accepted() {
        let mut raw = b"OPTIONS * RTSP/1.0\r\nX-Pad: ".to_vec();
        let pad = MAX_HEADER_BYTES - raw.len() - 4;
        raw.extend(std::iter::repeat_n(b'a', pad));
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(raw.len(), MAX_HEADER_BYTES);
        assert!(parse(&mut buf(&raw)).unwrap().is_some());
    }

    #[test]
    fn bad_content_length_is_rejected() {
        for value in ["abc", "-1", "+5", "", "1 2", "0x10"] {
            let raw = format!("ANNOUNCE rtsp://h/a RTSP/1.0\r\nContent-Length: {value}\r\n\r\n");
            let err = parse(&mut buf(raw.as_bytes())).unwrap_err();
            assert!(
                matches!(err, RtspError::BadContentLength(_)),
                "{value:?} -> {err:?}"
            );
        }
        let raw =
            b"ANNOUNCE rtsp://h/a RTSP/1.0\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\nabcd";
        let err = parse(&mut buf(raw)).unwrap_err();
        assert!(matches!(err, RtspError::BadContentLength(_)), "{err:?}");
    }

    #[test]
    fn body_too_large_is_rejected_before_it_arrives() {
        let raw = format!(
            "ANNOUNCE rtsp://h/a RTSP/1.0\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let err = parse(&mut buf(raw.as_bytes())).unwrap_err();
        assert!(matches!(
            err,
            RtspError::BodyTooLarge { length, limit } if length == MAX_BODY_BYTES + 1 && limit == MAX_BODY_BYTES
        ));
        let raw = "ANNOUNCE rtsp://h/a RTSP/1.0\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert!(matches!(
            parse(&mut buf(raw.as_bytes())),
            Err(RtspError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn response_serialisation() {
        let out = Response::new(200)
            .header("CSeq", "3")
            .header("Session", "abc;timeout=60")
            .body("application/sdp", "v=0\r\n")
            .to_bytes();
        assert_eq!(
            &out[..],
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc;timeout=60\r\n\
Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
        for (status, reason) in [
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (406, "Not Acceptable"),
            (454, "Session Not Found"),
            (455, "Method Not Valid in This State"),
            (459, "Aggregate Operation Not Allowed"),
            (461, "Unsupported Transport"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "RTSP Version Not Supported"),
        ] {
            assert_eq!(Response::new(status).reason, reason);
        }
    }

    #[test]
    fn response_write_delimits_body_and_strips_crlf_from_headers() {
        let mut resp = Response::new(200).header("X-Echo", "a\r\nInjected: yes");
        resp.body = Bytes::from_static(b"xyz");
        let out = resp.to_bytes();
        // Parse our own output back: it must be one well-formed message.
        let mut b = BytesMut::from(&out[..]);
        match parse(&mut b).unwrap() {
            Some(Incoming::Response { status }) => assert_eq!(status, 200),
            other => panic!("{other:?}"),
        }
        assert!(b.is_empty());
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("X-Echo: a  Injected: yes\r\n"), "{text}");
        assert!(text.contains("Content-Length: 3\r\n"), "{text}");
    }

    #[test]
    fn random_bytes_never_panic() {
        let announce = ffmpeg_announce();
        let samples: [&[u8]; 4] = [
            announce.as_bytes(),
            b"SETUP rtsp://h/a/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast\r\n\r\n",
            b"$\x00\x00\x04abcd$\x01\x00\x00",
            b"RTSP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ];
        let mut rng = super::fuzz::XorShift(0x9E37_79B9_7F4A_7C15);
        let mut parsed = 0;
        for _ in 0..10_000 {
            let mut b = BytesMut::from(&rng.buffer(&samples)[..]);
            // Drain like the connection loop does; every call consumes or stops.
            for _ in 0..64 {
                let before = b.len();
                match parse(&mut b) {
                    Ok(Some(_)) => {
                        assert!(b.len() < before);
                        parsed += 1;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        assert!(parsed > 500, "only {parsed} messages parsed");
    }

    #[test]
    fn a_trickled_body_parses_the_head_once() {
        let mut p = Parser::default();
        let mut buf = BytesMut::from(
            &b"ANNOUNCE rtsp://h/p RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nab"[..],
        );
        assert!(matches!(p.parse(&mut buf), Ok(None)));
        assert!(p.need.is_some(), "the head was parsed and its length kept");
        for b in b"cd" {
            buf.extend_from_slice(&[*b]);
            assert!(matches!(p.parse(&mut buf), Ok(None)));
        }
        buf.extend_from_slice(b"eOPTIONS rtsp://h/p RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        let Ok(Some(Incoming::Request(r))) = p.parse(&mut buf) else {
            panic!("ANNOUNCE");
        };
        assert_eq!(&r.body[..], b"abcde");
        assert!(p.need.is_none());
        assert!(matches!(p.parse(&mut buf), Ok(Some(Incoming::Request(_)))));
    }
}

/// Shared by the fuzz tests of the RTSP modules.
#[cfg(test)]
pub(crate) mod fuzz {
    /// Small deterministic PRNG so the fuzz tests need no extra crate.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        /// Random bytes, or a valid sample with a few bytes mutated so the
        /// parser gets past its first checks.
        pub fn buffer(&mut self, samples: &[&[u8]]) -> Vec<u8> {
            if self.below(2) == 0 {
                let len = self.below(300);
                return (0..len).map(|_| self.next_u64() as u8).collect();
            }
            let mut v = samples[self.below(samples.len())].to_vec();
            for _ in 0..1 + self.below(4) {
                if v.is_empty() {
                    break;
                }
                let i = self.below(v.len());
                match self.below(3) {
                    0 => v[i] = self.next_u64() as u8,
                    1 => v.truncate(i),
                    _ => v.insert(i, b"\r\n:;=/-$ "[self.below(9)]),
                }
            }
            v
        }
    }
}
