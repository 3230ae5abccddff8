//! RTSP Digest authentication (RFC 2617 with MD5, `qop` absent or `auth`).
//!
//! Nonces are stateless: the issue time followed by an HMAC of it and of the RTSP
//! connection's id under a secret drawn when the [`super::Auth`] is built, so a nonce we
//! issued in the last five minutes verifies on the connection it was issued on and nowhere
//! else, without a table of outstanding nonces. A response captured on one connection is
//! refused on any other; on its own connection a replay gains nothing. (Counting `nc` would
//! need `qop=auth` in the challenge, which GStreamer's and live555's clients do not answer.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::{DigestResponse, REALM};

/// How long a nonce stays valid.
pub(crate) const NONCE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Tolerated clock step backwards between issuing and checking.
const CLOCK_SLACK_SECS: u64 = 5;
const TIME_HEX: usize = 16;
const MAC_HEX: usize = 32;

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) struct Nonces {
    secret: [u8; 32],
}

impl Nonces {
    pub(crate) fn new() -> Nonces {
        Nonces {
            secret: rand::random(),
        }
    }

    fn mac_hex(&self, time_hex: &str, conn: &str) -> String {
        // HMAC takes keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(time_hex.as_bytes());
        mac.update(b"\0");
        mac.update(conn.as_bytes());
        hex(&mac.finalize().into_bytes()[..MAC_HEX / 2])
    }

    /// A nonce for connection `conn` ("" outside RTSP connections).
    pub(crate) fn issue(&self, now: u64, conn: &str) -> String {
        let time_hex = format!("{now:0width$x}", width = TIME_HEX);
        let mac = self.mac_hex(&time_hex, conn);
        format!("{time_hex}{mac}")
    }

    /// The nonce is one of ours, issued for `conn`, and not older than [`NONCE_LIFETIME`].
    pub(crate) fn is_fresh(&self, nonce: &str, now: u64, conn: &str) -> bool {
        if nonce.len() != TIME_HEX + MAC_HEX || !nonce.is_ascii() {
            return false;
        }
        let (time_hex, mac) = nonce.split_at(TIME_HEX);
        let Ok(issued) = u64::from_str_radix(time_hex, 16) else {
            return false;
        };
        let authentic = constant_time_eq(self.mac_hex(time_hex, conn).as_bytes(), mac.as_bytes());
        let age_ok = issued <= now.saturating_add(CLOCK_SLACK_SECS)
            && now.saturating_sub(issued) <= NONCE_LIFETIME.as_secs();
        authentic && age_ok
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

/// The `response` a client knowing `pass` computes for this header and RTSP method, or None
/// when the header asks for something unsupported (another algorithm, `auth-int`, a missing
/// nc/cnonce with qop=auth).
pub(crate) fn expected_response(d: &DigestResponse, pass: &str, method: &str) -> Option<String> {
    if d.algorithm
        .as_deref()
        .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
    {
        return None;
    }
    let ha1 = md5_hex(&[&d.username, &d.realm, pass]);
    let ha2 = md5_hex(&[method, &d.uri]);
    match d.qop.as_deref() {
        None => Some(md5_hex(&[&ha1, &d.nonce, &ha2])),
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let nc = d.nc.as_deref()?;
            let cnonce = d.cnonce.as_deref()?;
            Some(md5_hex(&[&ha1, &d.nonce, nc, cnonce, "auth", &ha2]))
        }
        Some(_) => None,
    }
}

/// Checks a Digest response against a plain password. The realm must be ours, the nonce
/// fresh, and the response made for this request's URL (a response captured on one request
/// must not open another path); the caller checked the user name.
pub(crate) fn verify(
    d: &DigestResponse,
    pass: &str,
    (method, request_uri, conn): (&str, &str, &str),
    nonces: &Nonces,
    now: u64,
) -> Result<(), &'static str> {
    if d.realm != REALM {
        return Err("digest realm is not ours");
    }
    if !same_target(&d.uri, request_uri) {
        return Err("digest uri is not the request's URL");
    }
    if !nonces.is_fresh(&d.nonce, now, conn) {
        return Err("digest nonce is stale, not ours, or issued on another connection");
    }
    let expected = expected_response(d, pass, method).ok_or("unsupported digest parameters")?;
    let given = d.response.to_ascii_lowercase();
    if constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err("wrong digest response")
    }
}

/// The path of an RTSP URL or of a bare path: no scheme, host, query or trailing slash.
fn target_path(uri: &str) -> &str {
    let rest = match uri.split_once("://") {
        Some((_, after)) => after.find('/').map_or("", |i| &after[i..]),
        None => uri,
    };
    let path = rest.split('?').next().unwrap_or(rest);
    path.trim_end_matches('/')
}

/// Does a Digest `uri` name the request's target? Clients write the full URL or its path.
fn same_target(digest_uri: &str, request_uri: &str) -> bool {
    target_path(digest_uri) == target_path(request_uri)
}

/// Compares without an early exit, so the time taken does not tell how much matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(nonce: &str) -> DigestResponse {
        DigestResponse {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: nonce.into(),
            uri: "/dir/index.html".into(),
            response: String::new(),
            algorithm: None,
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("0a4f113b".into()),
            opaque: None,
        }
    }

    #[test]
    fn rfc_2617_example() {
        // RFC 2617 section 3.5.
        let d = response("dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(
            expected_response(&d, "Circle Of Life", "GET").as_deref(),
            Some("6629fae49393a05397450978507c4ef1")
        );
        let unsupported = DigestResponse {
            qop: Some("auth-int".into()),
            ..d.clone()
        };
        assert_eq!(expected_response(&unsupported, "x", "GET"), None);
        let sha = DigestResponse {
            algorithm: Some("SHA-256".into()),
            ..d.clone()
        };
        assert_eq!(expected_response(&sha, "x", "GET"), None);
        let no_cnonce = DigestResponse { cnonce: None, ..d };
        assert_eq!(expected_response(&no_cnonce, "x", "GET"), None);
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let n = Nonces::new();
        let t = 1_700_000_000;
        let nonce = n.issue(t, "c1");
        assert!(n.is_fresh(&nonce, t, "c1"));
        assert!(!n.is_fresh(&nonce, t, "c2"), "issued on another connection");
        assert!(n.is_fresh(&nonce, t + 299, "c1"));
        assert!(n.is_fresh(&nonce, t - 3, "c1"), "small clock step back");
        assert!(!n.is_fresh(&nonce, t + 301, "c1"), "expired");
        assert!(!n.is_fresh(&nonce, t - 60, "c1"), "from the future");
        assert!(!Nonces::new().is_fresh(&nonce, t, "c1"), "another secret");
        // Moving the time forward without the secret breaks the MAC.
        let later = format!("{:016x}{}", t + 200, &nonce[16..]);
        assert!(!n.is_fresh(&later, t + 250, "c1"));
        for bad in ["", "zz", &nonce[..47], &format!("{nonce}0"), "é"] {
            assert!(!n.is_fresh(bad, t, "c1"), "{bad:?}");
        }
    }
}
