//! ICE-lite (RFC 8445 2.5): we never send checks, we answer the peer's binding requests.
//! A request is ours when its USERNAME starts with a ufrag we handed out and its
//! MESSAGE-INTEGRITY verifies with that session's password.

use std::net::SocketAddr;
use std::sync::Arc;

use webrtc::stun::attributes::{ATTR_USERNAME, ATTR_USE_CANDIDATE};
use webrtc::stun::fingerprint::FINGERPRINT;
use webrtc::stun::integrity::MessageIntegrity;
use webrtc::stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use webrtc::stun::textattrs::TextAttribute;
use webrtc::stun::xoraddr::XorMappedAddress;

use super::Peer;

#[derive(Debug, thiserror::Error)]
pub enum StunError {
    #[error("not a STUN message: {0}")]
    Malformed(String),
    #[error("STUN {0} is not a binding request")]
    NotRequest(String),
    #[error("binding request without USERNAME")]
    NoUsername,
    #[error("binding request for unknown ufrag {0:?}")]
    UnknownUfrag(String),
    #[error("binding request with a bad MESSAGE-INTEGRITY or FINGERPRINT")]
    Integrity,
    #[error("cannot build the binding response: {0}")]
    Build(String),
}

pub struct Checked {
    pub peer: Arc<Peer>,
    pub response: Vec<u8>,
    /// The request carried USE-CANDIDATE: the controlling peer chose this address.
    pub nominate: bool,
}

/// What a STUN datagram is, before it is checked.
pub enum Kind {
    Request,
    /// A success response to a binding request of ours, with its transaction id.
    Response([u8; 12]),
    Other,
}

/// Reads the message type and transaction id (RFC 5389 6) without parsing attributes.
pub fn kind(pkt: &[u8]) -> Kind {
    if pkt.len() < 20 || pkt[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return Kind::Other;
    }
    let mut txid = [0u8; 12];
    txid.copy_from_slice(&pkt[8..20]);
    match u16::from_be_bytes([pkt[0], pkt[1]]) {
        0x0001 => Kind::Request,
        0x0101 => Kind::Response(txid),
        _ => Kind::Other,
    }
}

/// A binding request of ours to the peer at a new address (RFC 7675 consent): only the
/// real peer there knows its password to answer it, so a spoofed check cannot point our
/// media at someone else.
pub fn consent_request(peer: &Peer) -> Result<([u8; 12], Vec<u8>), StunError> {
    let txid = webrtc::stun::agent::TransactionId::new();
    let mut m = Message::new();
    let setters: [Box<dyn Setter>; 6] = [
        Box::new(BINDING_REQUEST),
        Box::new(txid),
        Box::new(webrtc::stun::textattrs::Username::new(
            ATTR_USERNAME,
            format!("{}:{}", peer.remote_ufrag, peer.ufrag),
        )),
        // ICE-lite is always the controlled agent.
        Box::new(webrtc::ice::control::AttrControlled(rand::random())),
        Box::new(MessageIntegrity::new_short_term_integrity(
            peer.remote_pwd.clone(),
        )),
        Box::new(FINGERPRINT),
    ];
    m.build(&setters)
        .map_err(|e| StunError::Build(e.to_string()))?;
    Ok((txid.0, m.raw))
}

/// Is this a genuine answer to our request: integrity with the peer's password?
pub fn consent_answered(pkt: &[u8], peer: &Peer) -> Result<(), StunError> {
    let mut m = Message::new();
    m.unmarshal_binary(pkt)
        .map_err(|e| StunError::Malformed(e.to_string()))?;
    if m.typ != BINDING_SUCCESS {
        return Err(StunError::NotRequest(m.typ.to_string()));
    }
    MessageIntegrity::new_short_term_integrity(peer.remote_pwd.clone())
        .check(&mut m)
        .map_err(|_| StunError::Integrity)?;
    if m.contains(webrtc::stun::attributes::ATTR_FINGERPRINT) {
        FINGERPRINT.check(&m).map_err(|_| StunError::Integrity)?;
    }
    Ok(())
}

/// Checks a binding request and builds the success response (XOR-MAPPED-ADDRESS, integrity
/// with our password, fingerprint).
pub fn answer_binding(
    pkt: &[u8],
    from: SocketAddr,
    lookup: impl Fn(&str) -> Option<Arc<Peer>>,
) -> Result<Checked, StunError> {
    let mut m = Message::new();
    m.unmarshal_binary(pkt)
        .map_err(|e| StunError::Malformed(e.to_string()))?;
    if m.typ != BINDING_REQUEST {
        return Err(StunError::NotRequest(m.typ.to_string()));
    }
    let username =
        TextAttribute::get_from_as(&m, ATTR_USERNAME).map_err(|_| StunError::NoUsername)?;
    // USERNAME is "our-ufrag:their-ufrag".
    let ours = username.text.split(':').next().unwrap_or_default();
    let peer = lookup(ours).ok_or_else(|| StunError::UnknownUfrag(ours.to_string()))?;
    let integrity = MessageIntegrity::new_short_term_integrity(peer.pwd.clone());
    integrity.check(&mut m).map_err(|_| StunError::Integrity)?;
    if m.contains(webrtc::stun::attributes::ATTR_FINGERPRINT) {
        FINGERPRINT.check(&m).map_err(|_| StunError::Integrity)?;
    }
    let nominate = m.contains(ATTR_USE_CANDIDATE);

    let mut out = Message::new();
    let setters: [Box<dyn Setter>; 5] = [
        Box::new(m.clone()),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(integrity),
        Box::new(FINGERPRINT),
    ];
    out.build(&setters)
        .map_err(|e| StunError::Build(e.to_string()))?;
    Ok(Checked {
        peer,
        response: out.raw,
        nominate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::stun::agent::TransactionId;
    use webrtc::stun::message::Getter;
    use webrtc::stun::textattrs::Username;

    fn request(username: &str, pwd: &str, nominate: bool) -> Vec<u8> {
        let mut m = Message::new();
        let mut s: Vec<Box<dyn Setter>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(ATTR_USERNAME, username.to_string())),
        ];
        if nominate {
            s.push(Box::new(webrtc::ice::use_candidate::UseCandidateAttr::new()));
        }
        s.push(Box::new(MessageIntegrity::new_short_term_integrity(
            pwd.to_string(),
        )));
        s.push(Box::new(FINGERPRINT));
        m.build(&s).expect("build");
        m.raw
    }

    fn peer() -> Arc<Peer> {
        Peer::new(
            std::time::Instant::now(),
            "theirs".into(),
            "their-password-of-22-chars".into(),
        )
        .0
    }

    #[test]
    fn answers_a_valid_request_with_the_mapped_address() {
        let p = peer();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let req = request(&format!("{}:theirs", p.ufrag), &p.pwd, true);
        let lookup = |u: &str| (u == p.ufrag).then(|| Arc::clone(&p));
        let c = answer_binding(&req, from, lookup).expect("valid");
        assert!(c.nominate);
        let mut resp = Message::new();
        resp.unmarshal_binary(&c.response).unwrap();
        assert_eq!(resp.typ, BINDING_SUCCESS);
        let mut xor = XorMappedAddress::default();
        xor.get_from(&resp).unwrap();
        assert_eq!(SocketAddr::new(xor.ip, xor.port), from);
        MessageIntegrity::new_short_term_integrity(p.pwd.clone())
            .check(&mut resp)
            .expect("response integrity");
    }

    #[test]
    fn refuses_bad_requests() {
        let p = peer();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let lookup = |u: &str| (u == p.ufrag).then(|| Arc::clone(&p));
        let wrong_pwd = request(&format!("{}:x", p.ufrag), "not-the-password-at-all", false);
        assert!(matches!(
            answer_binding(&wrong_pwd, from, lookup),
            Err(StunError::Integrity)
        ));
        let unknown = request("nobody:x", &p.pwd, false);
        assert!(matches!(
            answer_binding(&unknown, from, lookup),
            Err(StunError::UnknownUfrag(_))
        ));
        for junk in [&b""[..], &[0u8, 1, 0, 0], &[0u8; 19], &[1u8; 40]] {
            assert!(answer_binding(junk, from, lookup).is_err());
        }
        assert!(matches!(kind(&wrong_pwd), Kind::Request));
        for junk in [&b""[..], &[0u8; 19], &[1u8; 40]] {
            assert!(matches!(kind(junk), Kind::Other));
        }
        // A request cut short after its header claims more attributes than there are.
        let mut cut = request(&format!("{}:x", p.ufrag), &p.pwd, false);
        cut.truncate(30);
        assert!(answer_binding(&cut, from, lookup).is_err());
    }

    #[test]
    fn consent_requests_are_answered_only_with_the_peers_password() {
        let p = peer();
        let (txid, req) = consent_request(&p).unwrap();
        assert!(matches!(kind(&req), Kind::Request));
        let mut m = Message::new();
        m.unmarshal_binary(&req).unwrap();
        let mut user = Username::new(ATTR_USERNAME, String::new());
        user.get_from(&m).unwrap();
        assert_eq!(user.text, format!("theirs:{}", p.ufrag));
        MessageIntegrity::new_short_term_integrity(p.remote_pwd.clone())
            .check(&mut m)
            .expect("keyed with the peer's password");
        let answer = |pwd: &str| {
            let mut out = Message::new();
            let setters: [Box<dyn Setter>; 4] = [
                Box::new(m.clone()),
                Box::new(BINDING_SUCCESS),
                Box::new(MessageIntegrity::new_short_term_integrity(pwd.to_string())),
                Box::new(FINGERPRINT),
            ];
            out.build(&setters).unwrap();
            out.raw
        };
        let good = answer(&p.remote_pwd);
        assert!(matches!(kind(&good), Kind::Response(t) if t == txid));
        consent_answered(&good, &p).expect("genuine answer");
        assert!(consent_answered(&answer("someone-else-s-password"), &p).is_err());
        assert!(consent_answered(&good[..30], &p).is_err());
    }
}
