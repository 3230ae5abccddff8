//! The Transport header (RFC 2326 12.39): how RTP of one media travels,
//! either interleaved in the RTSP TCP connection or over UDP port pairs.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lower {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSpec {
    pub lower: Lower,
    pub multicast: bool,
    /// RTP and RTCP channels of interleaved frames.
    pub interleaved: Option<(u8, u8)>,
    /// RTP and RTCP UDP ports of the client.
    pub client_port: Option<(u16, u16)>,
    pub server_port: Option<(u16, u16)>,
    /// The client publishes (ANNOUNCE/RECORD) rather than plays.
    pub mode_record: bool,
    pub ssrc: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("empty Transport header")]
    Empty,
    #[error("unsupported transport {0:?} (only RTP/AVP over UDP or TCP)")]
    UnsupportedProtocol(String),
    #[error("bad {name} value {value:?} in Transport header")]
    BadParameter { name: String, value: String },
    #[error("Transport asks for both unicast and multicast")]
    ConflictingDelivery,
}

/// Parses every comma-separated alternative of a Transport header, in order.
///
/// Alternatives with a profile we do not speak (RTP/SAVP, RTP/AVPF, ...) are
/// skipped, since the client offered them as a choice; only when nothing
/// usable remains is the first such alternative reported as an error.
/// Malformed parameters in a supported alternative are always an error, since
/// guessing what the client meant could send media to the wrong place.
pub fn parse_transport(header: &str) -> Result<Vec<TransportSpec>, TransportError> {
    let mut specs = Vec::new();
    let mut first_unsupported = None;
    for alternative in split_unquoted(header, ',') {
        if alternative.trim().is_empty() {
            continue;
        }
        match parse_spec(alternative) {
            Ok(spec) => specs.push(spec),
            Err(err @ TransportError::UnsupportedProtocol(_)) => {
                first_unsupported.get_or_insert(err);
            }
            Err(err) => return Err(err),
        }
    }
    if specs.is_empty() {
        return Err(first_unsupported.unwrap_or(TransportError::Empty));
    }
    Ok(specs)
}

fn parse_spec(spec: &str) -> Result<TransportSpec, TransportError> {
    let mut params = split_unquoted(spec, ';').map(str::trim);
    let protocol = params.next().unwrap_or_default();
    let mut out = TransportSpec {
        lower: parse_protocol(protocol)?,
        multicast: false,
        interleaved: None,
        client_port: None,
        server_port: None,
        mode_record: false,
        ssrc: None,
    };
    let (mut unicast, mut multicast) = (false, false);
    for param in params.filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (param, ""),
        };
        match name.to_ascii_lowercase().as_str() {
            "unicast" => unicast = true,
            "multicast" => multicast = true,
            "interleaved" => out.interleaved = Some(parse_pair(name, value, u8::checked_add)?),
            "client_port" => out.client_port = Some(parse_port_pair(name, value)?),
            "server_port" => out.server_port = Some(parse_port_pair(name, value)?),
            "ssrc" => out.ssrc = Some(parse_ssrc(value)?),
            "mode" => out.mode_record = parse_mode(value)?,
            // destination, source, ttl, port, layers, append and extensions
            // do not change how we send or receive.
            _ => {}
        }
    }
    if unicast && multicast {
        return Err(TransportError::ConflictingDelivery);
    }
    // RFC 2326 makes multicast the default, but every client that omits the
    // parameter means unicast.
    out.multicast = multicast;
    Ok(out)
}

fn parse_protocol(protocol: &str) -> Result<Lower, TransportError> {
    match protocol.to_ascii_uppercase().as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => Ok(Lower::Udp),
        "RTP/AVP/TCP" => Ok(Lower::Tcp),
        _ => Err(TransportError::UnsupportedProtocol(protocol.to_string())),
    }
}

/// "a-b", or a single "a" meaning a and a+1 (RFC 2326 12.39).
fn parse_pair<T: std::str::FromStr + Copy + From<u8>>(
    name: &str,
    value: &str,
    next: fn(T, T) -> Option<T>,
) -> Result<(T, T), TransportError> {
    let bad = || bad_parameter(name, value);
    let number = |s: &str| -> Result<T, TransportError> {
        // FromStr for integers accepts a leading '+'; a header does not.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    match value.split_once('-') {
        Some((a, b)) => Ok((number(a.trim())?, number(b.trim())?)),
        None => {
            let a = number(value)?;
            let b = next(a, T::from(1)).ok_or_else(bad)?;
            Ok((a, b))
        }
    }
}

/// Port 0 is not a destination we could send to.
fn parse_port_pair(name: &str, value: &str) -> Result<(u16, u16), TransportError> {
    let pair = parse_pair(name, value, u16::checked_add)?;
    if pair.0 == 0 || pair.1 == 0 {
        return Err(bad_parameter(name, value));
    }
    Ok(pair)
}

fn parse_ssrc(value: &str) -> Result<u32, TransportError> {
    let hex = value.trim();
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_parameter("ssrc", value));
    }
    u32::from_str_radix(hex, 16).map_err(|_| bad_parameter("ssrc", value))
}

/// `mode` may be quoted and may list several methods ("PLAY,RECORD").
fn parse_mode(value: &str) -> Result<bool, TransportError> {
    let unquoted = value.trim().trim_matches('"');
    let mut record = false;
    for mode in unquoted.split(',').map(str::trim) {
        match mode.to_ascii_lowercase().as_str() {
            "record" | "receive" => record = true,
            "play" => {}
            _ => return Err(bad_parameter("mode", value)),
        }
    }
    Ok(record)
}

fn bad_parameter(name: &str, value: &str) -> TransportError {
    TransportError::BadParameter {
        name: name.to_string(),
        value: value.chars().take(80).collect(),
    }
}

/// Splits on `sep` outside double quotes, because a quoted mode list
/// (mode="PLAY,RECORD") contains the alternative separator.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut quoted = false;
        for (i, c) in current.char_indices() {
            if c == '"' {
                quoted = !quoted;
            } else if c == sep && !quoted {
                rest = Some(&current[i + c.len_utf8()..]);
                return Some(&current[..i]);
            }
        }
        rest = None;
        Some(current)
    })
}

impl TransportSpec {
    /// The header value for a SETUP answer.
    pub fn to_header(&self) -> String {
        let mut out = String::from(match self.lower {
            Lower::Udp => "RTP/AVP",
            Lower::Tcp => "RTP/AVP/TCP",
        });
        out.push_str(if self.multicast {
            ";multicast"
        } else {
            ";unicast"
        });
        // Writing to a String cannot fail.
        if let Some((a, b)) = self.interleaved {
            let _ = write!(out, ";interleaved={a}-{b}");
        }
        if let Some((a, b)) = self.client_port {
            let _ = write!(out, ";client_port={a}-{b}");
        }
        if let Some((a, b)) = self.server_port {
            let _ = write!(out, ";server_port={a}-{b}");
        }
        if let Some(ssrc) = self.ssrc {
            let _ = write!(out, ";ssrc={ssrc:08X}");
        }
        if self.mode_record {
            out.push_str(";mode=record");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> TransportSpec {
        let mut specs = parse_transport(header).unwrap();
        assert_eq!(specs.len(), 1, "{specs:?}");
        specs.remove(0)
    }

    fn bad_param_name(header: &str) -> String {
        match parse_transport(header) {
            Err(TransportError::BadParameter { name, .. }) => name,
            other => panic!("{header:?} -> {other:?}"),
        }
    }

    #[test]
    fn ffmpeg_tcp_record() {
        let spec = one("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
        assert_eq!(
            spec,
            TransportSpec {
                lower: Lower::Tcp,
                multicast: false,
                interleaved: Some((0, 1)),
                client_port: None,
                server_port: None,
                mode_record: true,
                ssrc: None,
            }
        );
        assert_eq!(
            spec.to_header(),
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"
        );
    }

    #[test]
    fn ffmpeg_udp_record() {
        let spec = one("RTP/AVP;unicast;client_port=5000-5001;mode=record");
        assert_eq!(spec.lower, Lower::Udp);
        assert_eq!(spec.client_port, Some((5000, 5001)));
        assert!(spec.mode_record);
        assert!(!spec.multicast);
        let answer = TransportSpec {
            server_port: Some((8000, 8001)),
            ssrc: Some(0xDEAD_BEEF),
            ..spec
        };
        assert_eq!(
            answer.to_header(),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=DEADBEEF;mode=record"
        );
        // Our own answer must parse back to the same thing.
        assert_eq!(one(&answer.to_header()), answer);
    }

    #[test]
    fn variants_of_protocol_mode_and_ports() {
        let spec = one("rtp/avp/udp; client_port=6970 ;mode=\"RECORD\"");
        assert_eq!(spec.lower, Lower::Udp);
        assert_eq!(spec.client_port, Some((6970, 6971)));
        assert!(spec.mode_record);

        let spec = one("RTP/AVP/TCP;interleaved=4;mode=PLAY;ssrc=0000abcd");
        assert_eq!(spec.interleaved, Some((4, 5)));
        assert!(!spec.mode_record);
        assert_eq!(spec.ssrc, Some(0xabcd));

        let spec = one("RTP/AVP;unicast;mode=\"PLAY,RECORD\";x-custom=1;destination=10.0.0.1");
        assert!(spec.mode_record);
        assert_eq!(spec.ssrc, None);
    }

    #[test]
    fn alternatives_are_returned_in_order() {
        let specs = parse_transport(
            "RTP/AVP/TCP;unicast;interleaved=2-3, RTP/AVP;unicast;client_port=7000-7001",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].lower, Lower::Tcp);
        assert_eq!(specs[0].interleaved, Some((2, 3)));
        assert_eq!(specs[1].lower, Lower::Udp);
        assert_eq!(specs[1].client_port, Some((7000, 7001)));
    }

    #[test]
    fn savp_is_unsupported_but_skipped_when_an_alternative_remains() {
        let err = parse_transport("RTP/SAVP;unicast;client_port=5000-5001").unwrap_err();
        assert_eq!(
            err,
            TransportError::UnsupportedProtocol("RTP/SAVP".to_string())
        );
        assert!(err.to_string().contains("RTP/SAVP"));
        assert!(matches!(
            parse_transport("RTP/SAVP/TCP;interleaved=0-1"),
            Err(TransportError::UnsupportedProtocol(_))
        ));
        assert!(matches!(
            parse_transport("RAW/RAW/UDP;unicast"),
            Err(TransportError::UnsupportedProtocol(_))
        ));
        let specs = parse_transport(
            "RTP/SAVP;unicast;client_port=5000-5001,RTP/AVP;unicast;client_port=5002",
        )
        .unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].client_port, Some((5002, 5003)));
    }

    #[test]
    fn multicast_is_reported_and_conflicts_are_errors() {
        let spec = one("RTP/AVP;multicast;destination=224.2.0.1;port=3456-3457;ttl=16");
        assert!(spec.multicast);
        assert_eq!(spec.client_port, None);
        assert_eq!(spec.to_header(), "RTP/AVP;multicast");
        assert_eq!(
            parse_transport("RTP/AVP;unicast;multicast"),
            Err(TransportError::ConflictingDelivery)
        );
    }

    #[test]
    fn bad_numbers_name_the_parameter() {
        for (header, name) in [
            ("RTP/AVP;unicast;client_port=abc", "client_port"),
            ("RTP/AVP;unicast;client_port=70000-70001", "client_port"),
            ("RTP/AVP;unicast;client_port=65535", "client_port"),
            ("RTP/AVP;unicast;client_port=0-1", "client_port"),
            ("RTP/AVP;unicast;client_port=5000-", "client_port"),
            ("RTP/AVP;unicast;client_port=+5000", "client_port"),
            ("RTP/AVP;unicast;client_port=", "client_port"),
            ("RTP/AVP;server_port=1-2-3", "server_port"),
            ("RTP/AVP/TCP;interleaved=255", "interleaved"),
            ("RTP/AVP/TCP;interleaved=0-256", "interleaved"),
            ("RTP/AVP/TCP;interleaved=-1", "interleaved"),
            ("RTP/AVP;ssrc=xyz", "ssrc"),
            ("RTP/AVP;ssrc=123456789", "ssrc"),
            ("RTP/AVP;mode=teleport", "mode"),
        ] {
            assert_eq!(bad_param_name(header), name, "{header}");
        }
        let err = parse_transport("RTP/AVP;client_port=abc").unwrap_err();
        assert!(err.to_string().contains("client_port"), "{err}");
        assert!(err.to_string().contains("abc"), "{err}");
    }

    #[test]
    fn empty_header_is_an_error() {
        assert_eq!(parse_transport(""), Err(TransportError::Empty));
        assert_eq!(parse_transport(" , "), Err(TransportError::Empty));
    }

    #[test]
    fn random_input_never_panics() {
        let samples: [&[u8]; 3] = [
            b"RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            b"RTP/AVP;unicast;client_port=5000-5001;ssrc=0A0B0C0D;mode=\"PLAY,RECORD\"",
            b"RTP/SAVP;multicast;port=1, RTP/AVP;unicast;client_port=9",
        ];
        let mut rng = crate::servers::rtsp::message::fuzz::XorShift(0x2545_F491_4F6C_DD1D);
        let mut parsed = 0;
        for _ in 0..10_000 {
            let bytes = rng.buffer(&samples);
            let header = String::from_utf8_lossy(&bytes);
            if let Ok(specs) = parse_transport(&header) {
                parsed += 1;
                // Whatever we accept must serialise to something we accept.
                for spec in specs {
                    assert!(parse_transport(&spec.to_header()).is_ok(), "{spec:?}");
                }
            }
        }
        assert!(parsed > 500, "only {parsed} headers parsed");
    }
}
