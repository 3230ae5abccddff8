//! DTLS-SRTP for one peer (RFC 5763/5764) with the `dtls` crate, over the shared socket.
//!
//! As DTLS server we choose the SRTP profile in *our* order: the ClientHello's `use_srtp`
//! list is read (reassembled if fragmented) before the DTLS stack sees it, and the stack is
//! then given only the profile we picked, because `dtls` 0.17 would take the client's first.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use webrtc::dtls::config::{ClientAuthType, Config as DtlsConfig, ExtendedMasterSecretType};
use webrtc::dtls::conn::DTLSConn;
use webrtc::dtls::crypto::Certificate;
use webrtc::util::{Conn, KeyingMaterialExporter};

use super::udp::{self, PeerAddr};
use crate::config::SrtpProfile;
use crate::servers::webrtc::dtls_sniff::{profile_name, ClientHelloAssembler, ClientHelloError};

/// RFC 5764 4.2.
const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// The server's DTLS certificate, shared by all sessions (WebRTC certificates are
/// self-signed; the peer trusts the fingerprint in our answer).
pub struct Identity {
    pub certificate: Certificate,
    /// `sha-256 AB:CD:...` as written in `a=fingerprint`.
    pub fingerprint: String,
}

impl Identity {
    pub fn generate() -> anyhow::Result<Identity> {
        let certificate = Certificate::generate_self_signed(vec!["hubcast".to_owned()])
            .map_err(|e| anyhow::anyhow!("DTLS certificate: {e}"))?;
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| anyhow::anyhow!("DTLS certificate: empty chain"))?;
        let fingerprint = format!("sha-256 {}", hex_fingerprint(&ring::digest::SHA256, der));
        Ok(Identity {
            certificate,
            fingerprint,
        })
    }
}

fn hex_fingerprint(alg: &'static ring::digest::Algorithm, der: &[u8]) -> String {
    let d = ring::digest::digest(alg, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The peer's `a=fingerprint`: hash name and colon-separated hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub algorithm: String,
    pub value: String,
}

impl Fingerprint {
    /// Does this certificate (DER) hash to the fingerprint?
    fn matches(&self, der: &[u8]) -> Result<bool, DtlsError> {
        let alg = match self.algorithm.to_ascii_lowercase().as_str() {
            "sha-256" => &ring::digest::SHA256,
            "sha-384" => &ring::digest::SHA384,
            "sha-512" => &ring::digest::SHA512,
            other => return Err(DtlsError::FingerprintAlgorithm(other.to_string())),
        };
        Ok(hex_fingerprint(alg, der).eq_ignore_ascii_case(&self.value))
    }
}

/// Which end of the DTLS handshake we are (from the offer's `a=setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The offer said `actpass` or `active`: we answer `passive` and choose the profile.
    Server,
    /// The offer said `passive`: we answer `active`, and the peer chooses.
    Client,
}

#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    #[error("{0}")]
    ClientHello(#[from] ClientHelloError),
    #[error("{datagrams} datagrams ({bytes} bytes) before a complete ClientHello")]
    EarlyFlood { datagrams: usize, bytes: usize },
    #[error("the peer offers SRTP profiles [{offered}], none of webrtcSRTPProfiles [{ours}]")]
    NoCommonProfile { offered: String, ours: String },
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    #[error("the peer's DTLS certificate does not match the fingerprint in its offer")]
    FingerprintMismatch,
    #[error("the offer's fingerprint uses {0:?}; hubcast checks sha-256, sha-384 and sha-512")]
    FingerprintAlgorithm(String),
    #[error("the peer sent no certificate")]
    NoCertificate,
    #[error("the DTLS stack chose an SRTP profile it was not offered ({0:?})")]
    UnexpectedProfile(String),
    #[error("keying material export failed: {0}")]
    Export(String),
    #[error("the peer went away during the DTLS handshake")]
    Gone,
}

/// Master keys and salts for both directions.
pub struct Keys {
    pub profile: SrtpProfile,
    pub local_key: Vec<u8>,
    pub local_salt: Vec<u8>,
    pub remote_key: Vec<u8>,
    pub remote_salt: Vec<u8>,
}

/// An established DTLS association.
pub struct Secured {
    pub conn: Arc<DTLSConn>,
    pub keys: Keys,
}

/// What a peer may send before its ClientHello is complete (a real one is 1 to 3
/// datagrams, retransmissions included): held for the `dtls` crate to read, so bounded.
const MAX_EARLY_DATAGRAMS: usize = 32;
const MAX_EARLY_BYTES: usize = 64 * 1024;

/// How soon our flights are resent as DTLS client. Some passive peers drop the first
/// ClientHello by design: ffmpeg's WHIP muxer reads it in its ICE loop and only then opens
/// its DTLS server, which waits for the resend. The crate's default (1 s) made every such
/// publish take a second; libwebrtc starts its own timer at 50 ms for the same reason.
const CLIENT_FLIGHT_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the handshake: waits for the ClientHello (server role) to choose the profile, then
/// lets the `dtls` crate finish; checks the peer's certificate against its offer and
/// exports the SRTP keys.
pub async fn handshake(
    socket: Arc<UdpSocket>,
    mut rx: mpsc::Receiver<Bytes>,
    mut remote: watch::Receiver<Option<PeerAddr>>,
    role: Role,
    prefs: &[SrtpProfile],
    identity: &Identity,
    expected: &Fingerprint,
) -> Result<Secured, DtlsError> {
    let mut early = VecDeque::new();
    let profiles = match role {
        Role::Client => {
            // Our first flight needs somewhere to go: a ClientHello sent before ICE has the
            // peer's address is lost, and the `dtls` crate gives up on a send error (or
            // waits a whole retransmission timer). The first valid check starts it.
            remote
                .wait_for(Option::is_some)
                .await
                .map_err(|_| DtlsError::Gone)?;
            prefs.to_vec()
        }
        Role::Server => {
            let mut hello = ClientHelloAssembler::default();
            let mut held = 0;
            let offered = loop {
                let d = rx.recv().await.ok_or(DtlsError::Gone)?;
                let done = hello.push(&d)?;
                held += d.len();
                if early.len() >= MAX_EARLY_DATAGRAMS || held > MAX_EARLY_BYTES {
                    return Err(DtlsError::EarlyFlood {
                        datagrams: early.len() + 1,
                        bytes: held,
                    });
                }
                early.push_back(d);
                if let Some(offered) = done {
                    break offered;
                }
            };
            let chosen = prefs
                .iter()
                .copied()
                .find(|p| offered.contains(&(p.to_dtls() as u16)));
            match chosen {
                Some(p) => vec![p],
                None => {
                    return Err(DtlsError::NoCommonProfile {
                        offered: offered
                            .iter()
                            .map(|&p| profile_name(p))
                            .collect::<Vec<_>>()
                            .join(", "),
                        ours: prefs
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
    };
    let link = Arc::new(Link {
        socket,
        early: Mutex::new(early),
        rx: tokio::sync::Mutex::new(rx),
        remote,
        closed: AtomicBool::new(false),
    });
    let config = DtlsConfig {
        certificates: vec![identity.certificate.clone()],
        srtp_protection_profiles: profiles.iter().map(|p| p.to_dtls()).collect(),
        client_auth: ClientAuthType::RequireAnyClientCert,
        extended_master_secret: ExtendedMasterSecretType::Request,
        // Self-signed on both sides: the fingerprint check below is the authentication.
        insecure_skip_verify: true,
        flight_interval: match role {
            Role::Client => CLIENT_FLIGHT_INTERVAL,
            Role::Server => Duration::ZERO,
        },
        ..Default::default()
    };
    let conn = DTLSConn::new(
        Arc::clone(&link) as Arc<dyn Conn + Send + Sync>,
        config,
        role == Role::Client,
        None,
    )
    .await
    .map_err(|e| DtlsError::Handshake(e.to_string()))?;
    let conn = Arc::new(conn);
    let state = conn.connection_state().await;
    let cert = state
        .peer_certificates
        .first()
        .ok_or(DtlsError::NoCertificate)?;
    if !expected.matches(cert)? {
        return Err(DtlsError::FingerprintMismatch);
    }
    let selected = conn.selected_srtpprotection_profile();
    let profile = profiles
        .iter()
        .copied()
        .find(|p| p.to_dtls() == selected)
        .ok_or_else(|| DtlsError::UnexpectedProfile(format!("{selected:?}")))?;
    let (key_len, salt_len) = match profile {
        SrtpProfile::AeadAes128Gcm => (16, 12),
        SrtpProfile::AeadAes256Gcm => (32, 12),
        SrtpProfile::AesCm128HmacSha1_80 => (16, 14),
    };
    let m = state
        .export_keying_material(EXPORTER_LABEL, &[], 2 * (key_len + salt_len))
        .await
        .map_err(|e| DtlsError::Export(e.to_string()))?;
    // client_key | server_key | client_salt | server_salt
    let (ck, rest) = m.split_at(key_len);
    let (sk, rest) = rest.split_at(key_len);
    let (cs, ss) = rest.split_at(salt_len);
    let (local_key, local_salt, remote_key, remote_salt) = match role {
        Role::Server => (sk, ss, ck, cs),
        Role::Client => (ck, cs, sk, ss),
    };
    Ok(Secured {
        conn,
        keys: Keys {
            profile,
            local_key: local_key.to_vec(),
            local_salt: local_salt.to_vec(),
            remote_key: remote_key.to_vec(),
            remote_salt: remote_salt.to_vec(),
        },
    })
}

/// The shared socket as one peer's DTLS stack sees it: records from that peer only (the
/// transport routes them here), sent to the address ICE chose.
struct Link {
    socket: Arc<UdpSocket>,
    /// Datagrams read before the stack existed (the ClientHello).
    early: Mutex<VecDeque<Bytes>>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    remote: watch::Receiver<Option<PeerAddr>>,
    closed: AtomicBool,
}

impl Link {
    fn closed_error() -> webrtc::util::Error {
        webrtc::util::Error::ErrUseClosedNetworkConn
    }
}

#[async_trait]
impl Conn for Link {
    async fn connect(&self, _addr: SocketAddr) -> webrtc::util::Result<()> {
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        let early = self
            .early
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let d = match early {
            Some(d) => Some(d),
            None if self.closed.load(Ordering::Acquire) => None,
            None => self.rx.lock().await.recv().await,
        };
        match d {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => {
                // The DTLS reader retries after errors: keep it from spinning until the
                // connection is dropped.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(Self::closed_error())
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        let n = self.recv(buf).await?;
        let from = self.remote_addr().ok_or_else(Self::closed_error)?;
        Ok((n, from))
    }

    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        let to = (*self.remote.borrow()).ok_or_else(Self::closed_error)?;
        Ok(udp::send(&self.socket, buf, to).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc::util::Result<usize> {
        let local = (*self.remote.borrow()).and_then(|r| r.local);
        Ok(udp::send(&self.socket, buf, PeerAddr::new(target, local)).await?)
    }

    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote.borrow().map(|r| r.remote)
    }

    async fn close(&self) -> webrtc::util::Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The fingerprint of an identity, as the peer's offer would carry it.
    fn fingerprint_of(id: &Identity) -> Fingerprint {
        let (algorithm, value) = id.fingerprint.split_once(' ').expect("sha-256 XX:..");
        Fingerprint {
            algorithm: algorithm.to_string(),
            value: value.to_string(),
        }
    }

    /// Our side's socket, and the transport's part: datagrams from the peer to the
    /// session's DTLS queue.
    async fn session_socket() -> (Arc<UdpSocket>, mpsc::Receiver<Bytes>) {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let (tx, rx) = mpsc::channel(64);
        let reader = Arc::clone(&socket);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok(n) = reader.recv(&mut buf).await {
                if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
        });
        (socket, rx)
    }

    /// A DTLS server on its own UDP socket, as a passive-offering client (ffmpeg's WHIP
    /// muxer) is; returns its address and a handle that ends when its handshake does.
    async fn dtls_server(
        id: &Identity,
    ) -> (SocketAddr, tokio::task::JoinHandle<Result<Instant, String>>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let config = DtlsConfig {
            certificates: vec![id.certificate.clone()],
            srtp_protection_profiles: vec![SrtpProfile::AeadAes128Gcm.to_dtls()],
            client_auth: ClientAuthType::RequireAnyClientCert,
            extended_master_secret: ExtendedMasterSecretType::Request,
            insecure_skip_verify: true,
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            // The server answers whoever sends first: connect once the first datagram came.
            let mut b = [0u8; 1];
            let (_, from) = sock.peek_from(&mut b).await.map_err(|e| e.to_string())?;
            sock.connect(from).await.map_err(|e| e.to_string())?;
            let conn = DTLSConn::new(Arc::new(sock), config, false, None)
                .await
                .map_err(|e| e.to_string())?;
            let done = Instant::now();
            let _ = conn.close().await;
            Ok(done)
        });
        (addr, task)
    }

    /// We are the DTLS client and ICE gives the peer's address only 300 ms after the
    /// handshake was started: the ClientHello waits for it, and the handshake is done in
    /// one round of flights after that (no loss, no retransmission timer).
    #[tokio::test]
    async fn client_role_waits_for_ice_then_handshakes_at_once() {
        let ours = Identity::generate().unwrap();
        let theirs = Identity::generate().unwrap();
        let (server_addr, server) = dtls_server(&theirs).await;
        let (socket, rx) = session_socket().await;
        let (remote_tx, remote) = watch::channel(None);
        let started = Instant::now();
        let nominate = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            remote_tx.send_replace(Some(PeerAddr::new(server_addr, None)));
            let at = Instant::now();
            // Keep the sender alive: a dropped sender would read as the peer gone.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(remote_tx);
            at
        });
        let secured = tokio::time::timeout(
            Duration::from_secs(5),
            handshake(
                Arc::clone(&socket),
                rx,
                remote,
                Role::Client,
                &[SrtpProfile::AeadAes128Gcm, SrtpProfile::AesCm128HmacSha1_80],
                &ours,
                &fingerprint_of(&theirs),
            ),
        )
        .await
        .expect("handshake within 5 s")
        .expect("handshake succeeds");
        let done = Instant::now();
        assert_eq!(secured.keys.profile, SrtpProfile::AeadAes128Gcm);
        server.await.unwrap().expect("server side done");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the handshake cannot finish before ICE gave an address"
        );
        // From the address to done: no retransmission timer (1 s) was needed.
        let after_ice = done.duration_since(started) - Duration::from_millis(300);
        eprintln!("DTLS client handshake after ICE: {after_ice:?}");
        assert!(
            after_ice < Duration::from_millis(800),
            "handshake took {after_ice:?} after ICE: a flight was lost"
        );
        nominate.abort();
    }

    /// A peer whose certificate is not the one in its offer is refused, in the client role.
    #[tokio::test]
    async fn client_role_checks_the_fingerprint() {
        let ours = Identity::generate().unwrap();
        let theirs = Identity::generate().unwrap();
        let stranger = Identity::generate().unwrap();
        let (server_addr, _server) = dtls_server(&theirs).await;
        let (socket, rx) = session_socket().await;
        let (_remote_tx, remote) = watch::channel(Some(PeerAddr::new(server_addr, None)));
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            handshake(
                socket,
                rx,
                remote,
                Role::Client,
                &[SrtpProfile::AeadAes128Gcm],
                &ours,
                &fingerprint_of(&stranger),
            ),
        )
        .await
        .expect("ends within 5 s");
        assert!(matches!(r, Err(DtlsError::FingerprintMismatch)));
    }

    /// A peer that floods datagrams without ever completing its ClientHello is cut off
    /// after a bounded amount, not buffered forever.
    #[tokio::test]
    async fn early_datagrams_are_bounded() {
        let ours = Identity::generate().unwrap();
        let (socket, _) = session_socket().await;
        let (tx, rx) = mpsc::channel(256);
        let (_remote_tx, remote) = watch::channel(None);
        // A DTLS handshake record that is not a ClientHello (a ServerHello), over and over.
        let mut junk = vec![22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12];
        junk.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for _ in 0..100 {
            tx.send(Bytes::from(junk.clone())).await.unwrap();
        }
        let fp = fingerprint_of(&ours);
        let r = handshake(
            socket,
            rx,
            remote,
            Role::Server,
            &[SrtpProfile::AeadAes128Gcm],
            &ours,
            &fp,
        )
        .await;
        assert!(
            matches!(r, Err(DtlsError::EarlyFlood { datagrams, .. }) if datagrams <= MAX_EARLY_DATAGRAMS + 1),
            "{:?}",
            r.err()
        );
    }
}
