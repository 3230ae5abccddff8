//! WHEP readers: each viewer gets its own hub queue, and one task that writes RTP headers
//! onto the path's shared payloads, protects them in place and sends them from the shared
//! UDP socket.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{debug, info};

use super::answer::{self, Accepted};
use super::sdp::{
    choose_audio, choose_h264, choose_h265, choose_passthrough_video, Direction, OfferTransport,
};
use super::session::{Session, SessionCounters, SessionKind};
use super::transport::gso::Batch;
use super::transport::outbound::Outbound;
use super::transport::rtcp;
use super::transport::{udp, PeerRx};
use super::{Established, HttpError, WebrtcServer, RTCP_INTERVAL};
use crate::path::{Codec, Hub, Packet, Reader, RtpFormat};
use crate::stats::{op, Telemetry};

/// RTP header (no CSRC, no extension) + the largest payload the repacketizer emits + the
/// largest SRTP tag, with room to spare: one buffer per viewer, reused for every packet.
const SEND_BUFFER: usize = 1500;
/// Packets taken per wake-up and sent together (one GSO send when their sizes allow).
const BATCH: usize = 16;

impl WebrtcServer {
    /// Handles a WHEP offer: returns the session and the complete answer.
    pub async fn whep_offer(
        self: &Arc<Self>,
        path: &str,
        offer: &str,
        peer: SocketAddr,
    ) -> Result<(Arc<Session>, String), HttpError> {
        let (offer, mut admission) = self.admit(offer, peer)?;
        let hub = self
            .paths
            .wait_stream(path)
            .await
            .map_err(HttpError::from)?;
        self.check_reader_limit(path, &hub, &mut admission)?;
        let tracks = hub.tracks();

        // Each hub track takes the first free m-section of its kind that can receive it.
        let mut sections = answer::sections(&offer.medias);
        let mut outbound: Vec<Option<Outbound>> = Vec::with_capacity(tracks.len());
        let mut reasons = Vec::new();
        for track in &tracks {
            let (kind, source_plid) = match &track.codec {
                Codec::H264(params) => ("video", params.profile_level_id()),
                _ if track.is_video() => ("video", None),
                _ => ("audio", None),
            };
            let chosen = sections.iter_mut().find_map(|sec| {
                let m = sec.offer;
                let usable = sec.accepted.is_none()
                    && !m.disabled
                    && m.kind == kind
                    && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv);
                if !usable {
                    return None;
                }
                let codec = if let Codec::H265(params) = &track.codec {
                    let profile = params.profile_tier_level().map(|p| p.profile_id);
                    choose_h265(m, profile)?.clone()
                } else if track.keyframe_detector().is_some() {
                    choose_passthrough_video(m, track)?.clone()
                } else if kind == "video" {
                    let (c, plid) = choose_h264(m, source_plid.as_deref())?;
                    let mut c = c.clone();
                    c.fmtp = answer::with_plid(&c.fmtp, &plid);
                    c
                } else {
                    choose_audio(m, track)?.clone()
                };
                Some((sec, codec))
            });
            let Some((sec, codec)) = chosen else {
                outbound.push(None);
                if track.keyframe_detector().is_some() || matches!(track.codec, Codec::H265(_)) {
                    reasons.push(format!(
                        "the stream is {} but the offer has no receiving video section with it",
                        track.name()
                    ));
                } else if kind == "video" {
                    reasons.push(format!(
                        "the stream is H.264 (profile-level-id {}) but the offer has no receiving video section with H.264 packetization-mode=1 that can decode it",
                        source_plid.as_deref().unwrap_or("unknown")
                    ));
                } else {
                    reasons.push(format!(
                        "the stream's audio is {} but the offer has no receiving audio section with it",
                        track.name()
                    ));
                }
                continue;
            };
            let ssrc: u32 = rand::random();
            outbound.push(Some(Outbound::new(
                ssrc,
                codec.payload_type,
                codec.clock_rate,
                rand::random(),
            )));
            sec.accepted = Some(Accepted {
                codec,
                direction: Direction::SendOnly,
                ssrc: Some(ssrc),
            });
        }
        let has_video = tracks.iter().any(|t| t.is_video());
        let video_out = tracks
            .iter()
            .zip(&outbound)
            .any(|(t, o)| t.is_video() && o.is_some());
        if (has_video && !video_out) || outbound.iter().all(Option::is_none) {
            if reasons.is_empty() {
                reasons.push("the offer has no codec the stream can be delivered in".into());
            }
            // Name what was offered, once each, so the viewer's side can see the mismatch.
            let mut offered: Vec<String> = Vec::new();
            for c in offer.medias.iter().flat_map(|m| &m.codecs) {
                let name = format!("{}/{}", c.name, c.clock_rate);
                if !offered.contains(&name) && offered.len() < 16 {
                    offered.push(name);
                }
            }
            return Err(HttpError::NotAcceptable(format!(
                "{} (the offer has: {})",
                reasons.join("; "),
                if offered.is_empty() {
                    "no codec".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        }

        let (ice, rx, answer) = self.answer(&offer.transport, &sections).await;
        let session = self
            .sessions
            .create(SessionKind::Whep, path, peer, ice, Arc::default());
        drop(admission);
        info!(path, peer = %peer, id = %session.id, "WHEP session started");
        let transport = offer.transport;
        self.spawn_session(&session, move |server, s| async move {
            server.run_reader(&s, hub, outbound, rx, transport).await
        });
        Ok((session, answer))
    }

    /// Feeds one viewer until it leaves, the stream ends, or the session is closed.
    async fn run_reader(
        &self,
        session: &Session,
        hub: Arc<Hub>,
        outbound: Vec<Option<Outbound>>,
        rx: PeerRx,
        offer: OfferTransport,
    ) -> String {
        let close = session.close_requested();
        let PeerRx {
            dtls,
            media,
            remote,
        } = rx;
        let work = async {
            let est = self.establish(session, dtls, remote, &offer).await?;
            let reader = hub
                .add_reader_as("webRTCSession", session.id.clone())
                .map_err(|e| e.to_string())?;
            let mut viewer = Viewer {
                batch: Batch::new(BATCH, SEND_BUFFER),
                outbound,
                est,
                counters: Arc::clone(&session.counters),
            };
            viewer
                .feed(self, session, reader, media, &self.paths.telemetry)
                .await
        };
        tokio::select! {
            reason = close => reason,
            r = work => match r {
                Ok(()) => "stream ended".to_string(),
                Err(reason) => reason,
            },
        }
    }
}

/// One viewer's send side.
struct Viewer {
    /// The packets of one wake-up, sent together.
    batch: Batch,
    outbound: Vec<Option<Outbound>>,
    est: Established,
    counters: Arc<SessionCounters>,
}

impl Viewer {
    /// Sends the cached GOP, then live packets; answers keyframe requests and sends sender
    /// reports, until the stream ends or the peer is gone.
    async fn feed(
        &mut self,
        server: &WebrtcServer,
        session: &Session,
        mut reader: Reader,
        mut media: tokio::sync::mpsc::Receiver<bytes::Bytes>,
        telemetry: &Telemetry,
    ) -> Result<(), String> {
        let hub = Arc::clone(reader.hub());
        let hung_up = self.est.hung_up();
        tokio::pin!(hung_up);
        let mut tick = tokio::time::interval(RTCP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let gop = std::mem::take(&mut reader.gop);
        let mut first = true;
        for pkt in &gop {
            self.send(pkt).await;
            if std::mem::take(&mut first) {
                telemetry
                    .latencies
                    .record(op::FIRST_PACKET, session.created.elapsed(), true);
            }
        }
        self.flush().await;
        drop(gop);
        loop {
            // Biased, queue first: nearly every wake-up is a packet, and polling the other
            // branches each time (the DTLS read takes a lock) was ~10 % of the user-space
            // CPU per viewer. They run whenever the queue is empty, i.e. between frames.
            tokio::select! {
                biased;
                pkt = reader.recv() => {
                    let Some(pkt) = pkt else { return Ok(()) };
                    self.send(&pkt).await;
                    if std::mem::take(&mut first) {
                        telemetry.latencies.record(op::FIRST_PACKET, session.created.elapsed(), true);
                    }
                    // Whatever else is queued, without a wake-up each.
                    for _ in 1..BATCH {
                        let Some(pkt) = reader.try_recv() else { break };
                        self.send(&pkt).await;
                    }
                    self.flush().await;
                }
                Some(d) = media.recv() => self.inbound(&d, &hub),
                _ = tick.tick() => {
                    server.check_consent(session)?;
                    self.sender_reports().await;
                }
                r = self.est.remote.changed() => self.est.follow(r),
                reason = &mut hung_up => return Err(reason),
            }
        }
    }

    /// Writes and protects the unit's WebRTC packets in the viewer's buffer and sends
    /// them. Nothing is allocated.
    async fn send(&mut self, unit: &Packet) {
        let Some(Some(out)) = self.outbound.get_mut(unit.track as usize) else {
            return;
        };
        let timestamp = unit.rtp_timestamp();
        for pkt in unit.rtp(RtpFormat::WebRtc) {
            let n = match out.write(
                self.batch.next_slot(),
                timestamp,
                pkt,
                &mut self.est.crypto.rtp_out,
            ) {
                Ok(n) => n,
                Err(e) => {
                    debug!(error = %e, "packet not protected, dropped");
                    continue;
                }
            };
            self.counters.packets_sent.fetch_add(1, Ordering::Relaxed);
            self.counters
                .bytes_sent
                .fetch_add(12 + pkt.payload.len() as u64, Ordering::Relaxed);
            // UDP: a failed send is a lost packet, not a reason to end the session.
            if let Err(e) = self.batch.push(n, &self.est.socket, self.est.addr).await {
                debug!(error = %e, "send failed");
            }
        }
    }

    async fn flush(&mut self) {
        if let Err(e) = self.batch.flush(&self.est.socket, self.est.addr).await {
            debug!(error = %e, "send failed");
        }
    }

    /// RTCP from the viewer: keyframe requests go to the path's source.
    fn inbound(&mut self, d: &[u8], hub: &Hub) {
        if !rtcp::is_rtcp(d) {
            return;
        }
        match self.est.unprotect_rtcp(d) {
            Ok(plain) if crate::media::rtcp::wants_keyframe(&plain) => hub.request_keyframe(),
            Ok(_) => {}
            Err(e) => debug!(error = %e, "viewer RTCP dropped"),
        }
    }

    async fn sender_reports(&mut self) {
        let reports: Vec<Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>> = self
            .outbound
            .iter()
            .flatten()
            .filter(|o| o.sent.packets > 0)
            .map(|o| {
                Box::new(rtcp::sender_report(o.ssrc, o.clock_rate, &o.sent))
                    as Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>
            })
            .collect();
        if reports.is_empty() {
            return;
        }
        match self.est.crypto.protect_rtcp(&reports) {
            Ok(p) => {
                let _ = udp::send(&self.est.socket, &p, self.est.addr).await;
            }
            Err(e) => debug!(error = %e, "sender report not sent"),
        }
    }
}
