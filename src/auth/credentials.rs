//! `Authorization` header parsing: Basic, Bearer and Digest (RFC 2617 / RFC 7616 syntax).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::Credentials;

/// Longer headers are refused unparsed: no legitimate one comes close.
const MAX_HEADER_LEN: usize = 8 * 1024;
/// More parameters than any Digest response has.
const MAX_PARAMS: usize = 32;

/// The parameters of a `Digest` Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

/// Base64 with or without padding: some clients drop it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn parse(value: &str) -> Credentials {
    if value.len() > MAX_HEADER_LEN {
        return Credentials::None;
    }
    let value = value.trim();
    let (scheme, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((s, r)) => (s, r.trim()),
        None => (value, ""),
    };
    let parsed = if scheme.eq_ignore_ascii_case("basic") {
        parse_basic(rest)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        parse_bearer(rest)
    } else if scheme.eq_ignore_ascii_case("digest") {
        parse_digest(rest).map(Credentials::Digest)
    } else {
        None
    };
    parsed.unwrap_or(Credentials::None)
}

fn parse_basic(rest: &str) -> Option<Credentials> {
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return None;
    }
    let decoded = BASE64.decode(rest).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some(Credentials::Basic {
        user: user.to_string(),
        pass: pass.to_string(),
    })
}

fn parse_bearer(rest: &str) -> Option<Credentials> {
    let ok = !rest.is_empty() && !rest.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| Credentials::Bearer(rest.to_string()))
}

fn parse_digest(rest: &str) -> Option<DigestResponse> {
    let params = parse_params(rest)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Some(DigestResponse {
        username: get("username")?,
        realm: get("realm")?,
        nonce: get("nonce")?,
        uri: get("uri")?,
        response: get("response")?,
        algorithm: get("algorithm"),
        qop: get("qop"),
        nc: get("nc"),
        cnonce: get("cnonce"),
        opaque: get("opaque"),
    })
}

/// `key=value` or `key="quoted \"value\""`, comma separated. Keys are lower-cased; a key given
/// twice, a missing '=' or an unclosed quote makes the whole header malformed.
fn parse_params(text: &str) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
            key.push(c.to_ascii_lowercase());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != ',') {
                value.push(c);
            }
        }
        // After a value: only whitespace up to the next comma (or the end).
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_some_and(|c| *c != ',') {
            return None;
        }
        if out.iter().any(|(k, _)| *k == key) || out.len() >= MAX_PARAMS {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> Credentials {
        Credentials::Basic {
            user: user.into(),
            pass: pass.into(),
        }
    }

    #[test]
    fn basic_headers() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            parse(&format!("Basic {}", b64("bob:s3cr:et"))),
            basic("bob", "s3cr:et")
        );
        assert_eq!(
            parse(&format!("basic   {}  ", b64("bob:"))),
            basic("bob", "")
        );
        assert_eq!(
            parse(&format!("BASIC {}", b64(":token"))),
            basic("", "token")
        );
        // Unpadded base64 ("bob:pw" encodes to 8 chars, "bo:pw" needs padding).
        assert_eq!(parse("Basic Ym86cHc"), basic("bo", "pw"));
        assert_eq!(
            parse(&format!("Basic {}", b64("ünï:cödé"))),
            basic("ünï", "cödé")
        );
        for bad in [
            "Basic".to_string(),
            "Basic ".to_string(),
            format!("Basic {}", b64("no-colon")),
            "Basic !!!!".to_string(),
            format!("Basic {} extra", b64("a:b")),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, b':', 0xfe])
            ),
            format!("Basi {}", b64("a:b")),
            format!("Basic{}", b64("a:b")),
        ] {
            assert_eq!(parse(&bad), Credentials::None, "{bad:?}");
        }
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(
            parse("Bearer eyJhbGciOi.eyJzdWIi.c2ln"),
            Credentials::Bearer("eyJhbGciOi.eyJzdWIi.c2ln".into())
        );
        assert_eq!(
            parse("bearer   user:pass "),
            Credentials::Bearer("user:pass".into())
        );
        assert_eq!(
            parse("bearer user:pass").user_pass(),
            Some(("user", "pass"))
        );
        assert_eq!(parse("Bearer a.b.c").user_pass(), None);
        assert_eq!(parse("Bearer a.b.c").bearer_token(), Some("a.b.c"));
        assert_eq!(parse("Bearer a:b:c").user_pass(), None);
        for bad in [
            "Bearer",
            "Bearer   ",
            "Bearer a b",
            "Bearer a\tb",
            "Bearer a\u{7f}",
        ] {
            assert_eq!(parse(bad), Credentials::None, "{bad:?}");
        }
    }

    #[test]
    fn digest_headers() {
        let h = r#"Digest username="bob", realm="hubcast", nonce="abc",
            uri="rtsp://h/cam", response="0123456789abcdef0123456789abcdef",
            algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz", opaque="o\"q""#;
        let Credentials::Digest(d) = parse(h) else {
            panic!("not parsed: {h}");
        };
        assert_eq!(
            d,
            DigestResponse {
                username: "bob".into(),
                realm: "hubcast".into(),
                nonce: "abc".into(),
                uri: "rtsp://h/cam".into(),
                response: "0123456789abcdef0123456789abcdef".into(),
                algorithm: Some("MD5".into()),
                qop: Some("auth".into()),
                nc: Some("00000001".into()),
                cnonce: Some("xyz".into()),
                opaque: Some("o\"q".into()),
            }
        );
        // Keys are case-insensitive, values keep their commas and spaces when quoted.
        let Credentials::Digest(d) =
            parse(r#"digest USERNAME="a, b",Realm=r,nonce=n,uri="/x y",response=r"#)
        else {
            panic!("not parsed");
        };
        assert_eq!((d.username.as_str(), d.uri.as_str()), ("a, b", "/x y"));
        assert_eq!(d.qop, None);
        for bad in [
            "Digest",
            r#"Digest username="bob""#,
            r#"Digest username="bob", realm="r", nonce="n", uri="u""#,
            r#"Digest username="bob, realm="r", nonce="n", uri="u", response="x""#,
            r#"Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x""#,
            r#"Digest username "a", realm="r", nonce="n", uri="u", response="x""#,
            r#"Digest username="a" realm="r", nonce="n", uri="u", response="x""#,
            r#"Digest =x, username="a", realm="r", nonce="n", uri="u", response="x""#,
            r#"Digest username="a\"#,
        ] {
            assert_eq!(parse(bad), Credentials::None, "{bad:?}");
        }
    }

    #[test]
    fn other_schemes_and_oversized_headers_are_none() {
        for bad in ["", "   ", "Negotiate abc", "NTLM abc", "x", "\u{0}"] {
            assert_eq!(parse(bad), Credentials::None, "{bad:?}");
        }
        let huge = format!("Bearer {}", "a".repeat(MAX_HEADER_LEN));
        assert_eq!(parse(&huge), Credentials::None);
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let prefixes = [
            "",
            "Basic ",
            "Bearer ",
            "Digest ",
            "digest username=\"",
            "Basic Y",
        ];
        let alphabet = b"\"\\=, \t:abcAZ09+/\x00\xff\xc3";
        for i in 0..20_000 {
            let len = rng.random_range(0..64);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.random_bool(0.5) {
                        alphabet[rng.random_range(0..alphabet.len())]
                    } else {
                        rng.random()
                    }
                })
                .collect();
            let text = format!(
                "{}{}",
                prefixes[i % prefixes.len()],
                String::from_utf8_lossy(&bytes)
            );
            let _ = parse(&text);
        }
    }
}
