//! WHEP readers: a peer connection per viewer, fed from its own hub queue.

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

use super::engine::SessionCodecs;
use super::sdp::{add_host_candidates, choose_h264, parse_offer, set_answer_plid};
use super::session::{dtls_alert, remote_addr, PcState, Session, SessionCounters, SessionKind};
use super::{complete_answer, set_offer, HttpError, WebrtcServer};
use crate::path::{Codec, Hub, Packet, Reader};
use crate::stats::{op, Telemetry};
use std::sync::atomic::Ordering;

/// The local track that carries one hub track to this viewer, with its own sequence numbers.
struct Outbound {
    track: Arc<TrackLocalStaticRTP>,
    seq: u16,
}

impl WebrtcServer {
    /// Handles a WHEP offer: returns the session and the complete answer.
    pub async fn whep_offer(
        self: &Arc<Self>,
        path: &str,
        offer: &str,
        peer: SocketAddr,
    ) -> Result<(Arc<Session>, String), HttpError> {
        let medias = parse_offer(offer).map_err(|e| HttpError::BadRequest(e.to_string()))?;
        self.check_session_limit()?;
        let hub = self
            .paths
            .wait_stream(path)
            .await
            .map_err(HttpError::from)?;
        self.check_reader_limit(path, &hub)?;
        let tracks = hub.tracks();

        let mut codecs = SessionCodecs {
            video: None,
            video_pt: 0,
            audio: None,
            audio_pt: 0,
        };
        let mut answer_plid = None;
        let mut reasons = Vec::new();
        for track in &tracks {
            match &track.codec {
                Codec::H264(params) => {
                    let source_plid = params.profile_level_id();
                    let chosen = medias
                        .iter()
                        .filter(|m| m.kind == "video")
                        .find_map(|m| choose_h264(m, source_plid.as_deref()));
                    match chosen {
                        Some((c, plid)) => {
                            codecs.set_video(c);
                            answer_plid = Some((c.payload_type, plid));
                        }
                        None => reasons.push(format!(
                            "the stream is H.264 (profile-level-id {}) but the offer has no H.264 with packetization-mode=1 that can decode it",
                            source_plid.as_deref().unwrap_or("unknown")
                        )),
                    }
                }
                Codec::Opus { .. } => {
                    let opus = medias
                        .iter()
                        .filter(|m| m.kind == "audio")
                        .flat_map(|m| m.codecs.iter())
                        .find(|c| c.is("opus") && c.clock_rate == 48_000);
                    if let Some(c) = opus {
                        codecs.set_audio(c);
                    }
                }
            }
        }
        let has_video = tracks.iter().any(|t| t.is_video());
        if (has_video && codecs.video.is_none())
            || (codecs.video.is_none() && codecs.audio.is_none())
        {
            if reasons.is_empty() {
                reasons.push("the offer has no codec the stream can be delivered in".into());
            }
            return Err(HttpError::NotAcceptable(reasons.join("; ")));
        }

        let (pc, state) = self.new_peer_connection(&codecs).await?;
        let negotiated = self
            .negotiate(&pc, offer, &codecs, &tracks_codecs(&tracks), &hub, &state)
            .await;
        let (outbound, answer) = match negotiated {
            Ok(v) => v,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let mut answer = match answer_plid {
            Some((pt, plid)) => set_answer_plid(&answer, pt, &plid),
            None => answer,
        };
        answer = add_host_candidates(
            &answer,
            &self.additional_hosts().await,
            self.engine.local_addr().port(),
        );

        let session = self.sessions.create(
            SessionKind::Whep,
            path,
            peer,
            Arc::clone(&pc),
            Arc::default(),
        );
        info!(
            path, peer = %peer, id = %session.id, "WHEP session started"
        );
        self.spawn_session(&session, state, move |server, s, state| async move {
            server.run_reader(&s, hub, outbound, state).await
        });
        Ok((session, answer))
    }

    /// Applies the offer, adds one local track per hub track the offer can take, and returns
    /// the complete answer (all candidates gathered: WHEP servers do not trickle).
    async fn negotiate(
        &self,
        pc: &Arc<RTCPeerConnection>,
        offer: &str,
        codecs: &SessionCodecs,
        track_kinds: &[bool],
        hub: &Arc<Hub>,
        state: &PcState,
    ) -> Result<(Vec<Option<Outbound>>, String), HttpError> {
        // Tracks first: `webrtc` then binds them to the offer's m-lines of the same kind.
        let mut outbound = Vec::with_capacity(track_kinds.len());
        for &is_video in track_kinds {
            let cap = if is_video {
                &codecs.video
            } else {
                &codecs.audio
            };
            let Some(cap) = cap else {
                outbound.push(None);
                continue;
            };
            let kind = if is_video { "video" } else { "audio" };
            let track = Arc::new(TrackLocalStaticRTP::new(
                cap.clone(),
                kind.into(),
                "hubcast".into(),
            ));
            let sender = pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
                .await
                .map_err(|e| HttpError::Internal(format!("add track: {e}")))?;
            outbound.push(Some(Outbound {
                track,
                seq: rand::random(),
            }));
            tokio::spawn(read_rtcp(sender, Arc::clone(hub), state.clone()));
        }

        set_offer(pc, offer).await?;
        Ok((outbound, complete_answer(pc).await?))
    }

    /// Feeds one viewer until it leaves, the stream ends, or the session is closed.
    async fn run_reader(
        &self,
        session: &Session,
        hub: Arc<Hub>,
        mut outbound: Vec<Option<Outbound>>,
        mut state: PcState,
    ) -> String {
        let close = session.close_requested();
        let timeout = self.config().webrtc_handshake_timeout;
        let alerts = self.engine.srtp.alerts();
        let work = async {
            self.handshake(session, &mut state, timeout).await?;
            let remote = remote_addr(&session.pc).await;
            let mut reader = hub
                .add_reader_as("webRTCSession", session.id.clone())
                .map_err(|e| e.to_string())?;
            let hung_up = dtls_alert(alerts, remote);
            let r = tokio::select! {
                r = feed(&mut reader, &mut outbound, &mut state, session, &self.paths.telemetry) => r,
                _ = hung_up => Err("the peer closed the connection (DTLS close_notify)".to_string()),
            };
            if let Some(remote) = remote {
                self.engine.srtp.forget(remote);
            }
            r
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

fn tracks_codecs(tracks: &[crate::path::Track]) -> Vec<bool> {
    tracks.iter().map(|t| t.is_video()).collect()
}

/// Sends the cached GOP, then live packets.
async fn feed(
    reader: &mut Reader,
    outbound: &mut [Option<Outbound>],
    state: &mut PcState,
    session: &Session,
    telemetry: &Telemetry,
) -> Result<(), String> {
    let counters = &session.counters;
    let gop = std::mem::take(&mut reader.gop);
    let mut first = true;
    for pkt in &gop {
        send(outbound, pkt, counters).await?;
        if std::mem::take(&mut first) {
            telemetry
                .latencies
                .record(op::FIRST_PACKET, session.created.elapsed(), true);
        }
    }
    drop(gop);
    loop {
        tokio::select! {
            pkt = reader.recv() => match pkt {
                Some(pkt) => {
                    send(outbound, &pkt, counters).await?;
                    if std::mem::take(&mut first) {
                        telemetry.latencies.record(op::FIRST_PACKET, session.created.elapsed(), true);
                    }
                }
                None => return Ok(()),
            },
            reason = state.ended() => return Err(reason),
        }
    }
}

async fn send(
    outbound: &mut [Option<Outbound>],
    pkt: &Packet,
    counters: &SessionCounters,
) -> Result<(), String> {
    let Some(Some(out)) = outbound.get_mut(pkt.track as usize) else {
        return Ok(());
    };
    counters.packets_sent.fetch_add(1, Ordering::Relaxed);
    counters
        .bytes_sent
        .fetch_add(12 + pkt.payload.len() as u64, Ordering::Relaxed);
    let rtp = webrtc::rtp::packet::Packet {
        header: webrtc::rtp::header::Header {
            version: 2,
            marker: pkt.marker,
            sequence_number: out.seq,
            timestamp: pkt.timestamp,
            ..Default::default()
        },
        payload: pkt.payload.clone(),
    };
    out.seq = out.seq.wrapping_add(1);
    out.track
        .write_rtp(&rtp)
        .await
        .map(|_| ())
        .map_err(|e| format!("write failed: {e}"))
}

/// Drains a sender's RTCP (the interceptors need it read) and turns PLI/FIR into keyframe
/// requests for the path's source.
///
/// It also stops when the peer connection ends: `webrtc` 0.17's `read_rtcp` waits for ever
/// when the connection was closed before the sender started (its stop notification fires
/// only for waiters already there), which would keep the whole session alive.
async fn read_rtcp(sender: Arc<RTCRtpSender>, hub: Arc<Hub>, mut state: PcState) {
    loop {
        let packets = tokio::select! {
            r = sender.read_rtcp() => match r {
                Ok((packets, _)) => packets,
                Err(_) => return,
            },
            _ = state.ended() => return,
        };
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                hub.request_keyframe();
            }
        }
    }
}
