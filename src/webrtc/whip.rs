//! WHIP publishers: a browser (or any WebRTC encoder) sends H.264 and Opus; the path's hub
//! takes the packets as they are and asks the publisher for keyframes when readers need them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;

use super::engine::SessionCodecs;
use super::sdp::{choose_h264, parse_offer};
use super::session::{dtls_alert, remote_addr, PcState, Session, SessionCounters, SessionKind};
use super::{complete_answer, set_offer, HttpError, WebrtcServer};
use crate::media::rtp::RtpPacket;
use crate::path::ingest::{H264Mode, Ingest};
use crate::path::{Hub, Publisher, Track};

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
        let medias = parse_offer(offer).map_err(|e| HttpError::BadRequest(e.to_string()))?;
        self.check_session_limit()?;
        let mut codecs = SessionCodecs {
            video: None,
            video_pt: 0,
            audio: None,
            audio_pt: 0,
        };
        if let Some((c, _)) = medias
            .iter()
            .filter(|m| m.kind == "video")
            .find_map(|m| choose_h264(m, None))
        {
            codecs.set_video(c);
        }
        if let Some(c) = medias
            .iter()
            .filter(|m| m.kind == "audio")
            .flat_map(|m| m.codecs.iter())
            .find(|c| c.is("opus") && c.clock_rate == 48_000)
        {
            codecs.set_audio(c);
        }
        if codecs.video.is_none() && codecs.audio.is_none() {
            return Err(HttpError::NotAcceptable(
                "the offer has no usable track: hubcast takes H.264 video (packetization-mode=1) and Opus audio".into(),
            ));
        }

        // Hub tracks in a fixed order: video first (if any), then audio.
        let mut tracks = Vec::new();
        if codecs.video.is_some() {
            tracks.push(Track::h264(Default::default()));
        }
        if codecs.audio.is_some() {
            tracks.push(Track::opus(2));
        }
        // Claim the path first: a busy path is refused before any WebRTC work.
        let publisher = self.paths.publish(path, tracks).map_err(HttpError::from)?;

        let (pc, state) = self.new_peer_connection(&codecs).await?;
        let has_video = codecs.video.is_some();
        let ingest = Arc::new(Mutex::new(Ingest::new(
            Arc::clone(&publisher.hub),
            &[Some(0), Some(u8::from(has_video))],
            H264Mode::Passthrough,
        )));
        let video_ssrc = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counters: Arc<SessionCounters> = Arc::default();
        on_tracks(
            &pc,
            Arc::clone(&ingest),
            has_video,
            Arc::clone(&video_ssrc),
            Arc::clone(&counters),
        );

        let negotiated = async {
            set_offer(&pc, offer).await?;
            complete_answer(&pc).await
        };
        let answer = match negotiated.await {
            Ok(a) => a,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let answer = super::sdp::add_host_candidates(
            &answer,
            &self.additional_hosts().await,
            self.engine.local_addr().port(),
        );
        let session =
            self.sessions
                .create(SessionKind::Whip, path, peer, Arc::clone(&pc), counters);
        publisher
            .hub
            .set_source_label("webRTCSession", session.id.clone());
        info!(path, peer = %peer, id = %session.id, "WHIP session started");
        self.spawn_session(&session, state, move |server, s, state| async move {
            server.run_publisher(&s, publisher, state, video_ssrc).await
        });
        Ok((session, answer))
    }

    /// Lives as long as the publisher: ends on DELETE, on a dead peer, or when another
    /// publisher takes over. Dropping the `Publisher` closes the hub and its readers.
    async fn run_publisher(
        &self,
        session: &Session,
        mut publisher: Publisher,
        mut state: PcState,
        video_ssrc: Arc<std::sync::atomic::AtomicU32>,
    ) -> String {
        let close = session.close_requested();
        let timeout = self.config().webrtc_handshake_timeout;
        let alerts = self.engine.srtp.alerts();
        let hub = Arc::clone(&publisher.hub);
        let work = async {
            self.handshake(session, &mut state, timeout).await?;
            let remote = remote_addr(&session.pc).await;
            let r = tokio::select! {
                r = state.ended() => Err(r),
                _ = dtls_alert(alerts, remote) => Err("the peer closed the connection (DTLS close_notify)".to_string()),
                _ = forward_keyframe_requests(&hub, &session.pc, &video_ssrc) => Ok(()),
            };
            if let Some(remote) = remote {
                self.engine.srtp.forget(remote);
            }
            r
        };
        tokio::select! {
            reason = close => reason,
            _ = publisher.kicked() => "replaced by another publisher".to_string(),
            r = work => r.err().unwrap_or_else(|| "stream ended".to_string()),
        }
    }
}

/// Reads each incoming track into the hub.
fn on_tracks(
    pc: &RTCPeerConnection,
    ingest: Arc<Mutex<Ingest>>,
    has_video: bool,
    video_ssrc: Arc<std::sync::atomic::AtomicU32>,
    counters: Arc<SessionCounters>,
) {
    pc.on_track(Box::new(move |track: Arc<TrackRemote>, _, _| {
        let ingest = Arc::clone(&ingest);
        let video_ssrc = Arc::clone(&video_ssrc);
        let counters = Arc::clone(&counters);
        Box::pin(async move {
            let media = match track.kind() {
                RTPCodecType::Video => {
                    video_ssrc.store(track.ssrc(), std::sync::atomic::Ordering::Relaxed);
                    0
                }
                RTPCodecType::Audio => usize::from(has_video),
                _ => return,
            };
            tokio::spawn(read_track(track, ingest, media, counters));
        })
    }));
}

async fn read_track(
    track: Arc<TrackRemote>,
    ingest: Arc<Mutex<Ingest>>,
    media: usize,
    counters: Arc<SessionCounters>,
) {
    while let Ok((pkt, _)) = track.read_rtp().await {
        counters
            .packets_received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        counters.bytes_received.fetch_add(
            12 + pkt.payload.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let pkt = RtpPacket {
            marker: pkt.header.marker,
            payload_type: pkt.header.payload_type,
            sequence: pkt.header.sequence_number,
            timestamp: pkt.header.timestamp,
            ssrc: pkt.header.ssrc,
            payload: pkt.payload,
        };
        let mut ingest = ingest.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = ingest.push_packet(media, &pkt) {
            debug!(path = ingest.hub().path(), error = %e, "dropped WHIP packet");
        }
    }
}

/// Turns the hub's keyframe requests (readers joining, viewers' PLI/FIR, loss) into RTCP PLI
/// to the publisher, at most one per `PLI_INTERVAL`.
async fn forward_keyframe_requests(
    hub: &Hub,
    pc: &RTCPeerConnection,
    video_ssrc: &std::sync::atomic::AtomicU32,
) {
    let mut requests = hub.keyframe_requests();
    let mut last: Option<Instant> = None;
    while requests.changed().await.is_ok() {
        if let Some(since) = last.map(|l| l.elapsed()) {
            if since < PLI_INTERVAL {
                tokio::time::sleep(PLI_INTERVAL - since).await;
            }
        }
        // Requests that arrived while we waited are served by this one PLI.
        requests.borrow_and_update();
        let ssrc = video_ssrc.load(std::sync::atomic::Ordering::Relaxed);
        if ssrc == 0 {
            continue;
        }
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        if let Err(e) = pc.write_rtcp(&[Box::new(pli)]).await {
            debug!(path = hub.path(), error = %e, "PLI not sent");
        }
        last = Some(Instant::now());
    }
}
