//! WHIP publishers: a browser (or any WebRTC encoder) sends H.264 and Opus; the path's hub
//! takes the packets as they are. We send receiver reports, and keyframe requests (PLI)
//! when readers need one.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::answer::{self, Accepted};
use super::sdp::{choose_publisher_audio, choose_publisher_video, Direction, OfferTransport};
use super::session::{Session, SessionKind};
use super::transport::rtcp::{self, ReceivedStats};
use super::transport::{udp, PeerRx};
use super::{Established, HttpError, WebrtcServer, RTCP_INTERVAL};
use crate::media::rtp;
use crate::path::{Publisher, Track};
use crate::stream::ingest::{H264Mode, Ingest};

/// At most one keyframe request per second per path: a keyframe costs the publisher
/// bandwidth, and every viewer joining at once must not multiply that.
const PLI_INTERVAL: Duration = Duration::from_secs(1);

impl WebrtcServer {
    pub async fn whip_offer(
        self: &Arc<Self>,
        path: &str,
        offer: &str,
        peer: SocketAddr,
    ) -> Result<(Arc<Session>, String), HttpError> {
        let (offer, admission) = self.admit(offer, peer)?;
        let mut sections = answer::sections(&offer.medias);
        // Payload type of each hub track, video first.
        let mut tracks = Vec::new();
        let mut payload_types = Vec::new();
        for kind in ["video", "audio"] {
            let chosen = sections.iter_mut().find_map(|sec| {
                let m = sec.offer;
                let usable = !m.disabled
                    && m.kind == kind
                    && matches!(m.direction, Direction::SendOnly | Direction::SendRecv);
                if !usable {
                    return None;
                }
                let (codec, track) = if kind == "video" {
                    let (c, t) = choose_publisher_video(m)?;
                    (c.clone(), t)
                } else {
                    let (c, t) = choose_publisher_audio(m)?;
                    (c.clone(), t)
                };
                Some((sec, codec, track))
            });
            let Some((sec, codec, track)) = chosen else {
                continue;
            };
            tracks.push(track);
            payload_types.push(codec.payload_type);
            sec.accepted = Some(Accepted {
                codec,
                direction: Direction::RecvOnly,
                ssrc: None,
            });
        }
        if tracks.is_empty() {
            return Err(HttpError::NotAcceptable(format!(
                "the offer has no usable track: hubcast takes {} (H.264 with packetization-mode=1; VP9 and AV1 profile 0)",
                crate::codec::CARRIED
            )));
        }
        // Claim the path first: a busy path is refused before any WebRTC work. The claim
        // holds against later publishers only once DTLS is done.
        let publisher = self
            .paths
            .publish(path, tracks, false)
            .map_err(HttpError::from)?;

        let (ice, rx, answer) = self.answer(&offer.transport, &sections).await;
        let session = self
            .sessions
            .create(SessionKind::Whip, path, peer, ice, Arc::default());
        drop(admission);
        publisher
            .hub
            .set_source_label("webRTCSession", session.id.clone());
        info!(path, peer = %peer, id = %session.id, "WHIP session started");
        let transport = offer.transport;
        self.spawn_session(&session, move |server, s| async move {
            server
                .run_publisher(&s, publisher, rx, transport, payload_types)
                .await
        });
        Ok((session, answer))
    }

    /// Lives as long as the publisher: ends on DELETE, on a dead peer, or when another
    /// publisher takes over. Dropping the `Publisher` closes the hub and its readers.
    async fn run_publisher(
        &self,
        session: &Session,
        mut publisher: Publisher,
        rx: PeerRx,
        offer: OfferTransport,
        payload_types: Vec<u8>,
    ) -> String {
        let close = session.close_requested();
        let PeerRx {
            dtls,
            media,
            remote,
        } = rx;
        let hub = Arc::clone(&publisher.hub);
        let claim = publisher.claim();
        let work = async {
            let est = self.establish(session, dtls, remote, &offer).await?;
            claim.establish();
            let media_to_track: Vec<Option<u8>> =
                (0..payload_types.len()).map(|i| Some(i as u8)).collect();
            let ingest = Ingest::new(Arc::clone(&hub), &media_to_track, H264Mode::Passthrough);
            let mut p = Publishing {
                est,
                ingest,
                payload_types,
                stats: Vec::new(),
                video_ssrc: None,
            };
            p.receive(self, session, media).await
        };
        tokio::select! {
            reason = close => reason,
            _ = publisher.kicked() => "replaced by another publisher".to_string(),
            r = work => r.err().unwrap_or_else(|| "stream ended".to_string()),
        }
    }
}

struct Publishing {
    est: Established,
    ingest: Ingest,
    /// Payload type of each hub track (video first).
    payload_types: Vec<u8>,
    stats: Vec<ReceivedStats>,
    video_ssrc: Option<u32>,
}

impl Publishing {
    async fn receive(
        &mut self,
        server: &WebrtcServer,
        session: &Session,
        mut media: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<(), String> {
        let hub = Arc::clone(self.ingest.hub());
        let hung_up = self.est.hung_up();
        tokio::pin!(hung_up);
        let mut tick = tokio::time::interval(RTCP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut requests = hub.keyframe_requests();
        let mut last_pli: Option<Instant> = None;
        // A request that came too soon after the last PLI: served when the interval is up.
        let mut pli_due: Option<tokio::time::Instant> = None;
        loop {
            let pli_timer = async {
                match pli_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                d = media.recv() => {
                    let Some(d) = d else { return Err("transport closed".into()) };
                    self.inbound(&d, session);
                }
                r = requests.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    requests.borrow_and_update();
                    let now = Instant::now();
                    match last_pli.map(|l| now.duration_since(l)) {
                        Some(since) if since < PLI_INTERVAL => {
                            pli_due.get_or_insert(tokio::time::Instant::now() + (PLI_INTERVAL - since));
                        }
                        _ => {
                            self.send_pli().await;
                            last_pli = Some(now);
                        }
                    }
                }
                () = pli_timer => {
                    pli_due = None;
                    self.send_pli().await;
                    last_pli = Some(Instant::now());
                }
                _ = tick.tick() => {
                    server.check_consent(session)?;
                    self.receiver_reports().await;
                }
                r = self.est.remote.changed() => self.est.follow(r),
                reason = &mut hung_up => return Err(reason),
            }
        }
    }

    fn inbound(&mut self, d: &[u8], session: &Session) {
        if rtcp::is_rtcp(d) {
            match self.est.unprotect_rtcp(d) {
                Ok(plain) => {
                    self.ingest.push_rtcp(&plain);
                    for s in &mut self.stats {
                        if let Some(ntp) = crate::media::rtcp::sender_report_ntp(&plain, s.ssrc) {
                            s.sender_report(ntp);
                        }
                    }
                }
                Err(e) => debug!(error = %e, "publisher RTCP dropped"),
            }
            return;
        }
        let plain = match self.est.unprotect_rtp(d) {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "publisher RTP dropped");
                return;
            }
        };
        let pkt = match rtp::parse(&plain) {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "publisher RTP unparsable");
                return;
            }
        };
        let Some(track) = self
            .payload_types
            .iter()
            .position(|&pt| pt == pkt.payload_type)
        else {
            // RTX or FEC we did not negotiate.
            return;
        };
        let c = &session.counters;
        c.packets_received.fetch_add(1, Ordering::Relaxed);
        c.bytes_received
            .fetch_add(plain.len() as u64, Ordering::Relaxed);
        match self.stats.iter_mut().find(|s| s.ssrc == pkt.ssrc) {
            Some(s) => s.packet(pkt.sequence),
            None => {
                let mut s = ReceivedStats::new(pkt.ssrc);
                s.packet(pkt.sequence);
                self.stats.push(s);
            }
        }
        if track == 0
            && self
                .ingest
                .hub()
                .tracks()
                .first()
                .is_some_and(Track::is_video)
        {
            self.video_ssrc = Some(pkt.ssrc);
        }
        if let Err(e) = self.ingest.push_packet(track, &pkt) {
            debug!(path = self.ingest.hub().path(), error = %e, "dropped WHIP packet");
        }
    }

    async fn send_pli(&mut self) {
        let Some(ssrc) = self.video_ssrc else { return };
        self.send_rtcp(vec![Box::new(rtcp::pli(ssrc))]).await;
    }

    async fn receiver_reports(&mut self) {
        let reports: Vec<_> = self.stats.iter_mut().filter_map(|s| s.report()).collect();
        if reports.is_empty() {
            return;
        }
        self.send_rtcp(vec![Box::new(rtcp::receiver_report(reports))])
            .await;
    }

    async fn send_rtcp(
        &mut self,
        packets: Vec<Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>>,
    ) {
        match self.est.crypto.protect_rtcp(&packets) {
            Ok(p) => {
                let socket = Arc::clone(&self.est.socket);
                let _ = udp::send(&socket, &p, self.est.addr).await;
            }
            Err(e) => debug!(error = %e, "RTCP to the publisher not sent"),
        }
    }
}
