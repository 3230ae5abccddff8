//! Pulled RTSP sources (cameras, or an origin hubcast) read with `retina`.
//!
//! One task per pulled path. It connects (at once, or on the first reader when
//! `sourceOnDemand`), feeds the path's hub through the same ingest as pushed streams, and on
//! any failure reconnects with capped exponential backoff. Readers stay attached for
//! `sourceReconnectGrace` and resume at the next keyframe; past it they are closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::{
    Credentials, PacketItem, PlayOptions, Session, SessionOptions, SetupOptions, Transport,
};
use tracing::{debug, info, warn};

use super::{SourceControl, SourceState};
use crate::codec::sdp::parse_media;
use crate::config::{PathConf, SourceTransport};
use crate::media::rtp::RtpPacket;
use crate::path::{PathManager, Publisher, Track};
use crate::stats::op;
use crate::stream::ingest::{H264Mode, Ingest};

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A session that lasted this long was healthy: the next failure starts from BACKOFF_MIN.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Camera silence that counts as a dead connection.
const PACKET_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid source URL: {0}")]
    Url(String),
    #[error("{0}")]
    Rtsp(#[from] retina::Error),
    #[error("the camera offers no track hubcast carries: {0}")]
    NoUsableTrack(String),
    #[error("the camera's SDP cannot be read: {0}")]
    Sdp(String),
    #[error("no packets for {0:?}")]
    Silent(Duration),
    #[error("the camera ended the stream")]
    Ended,
    #[error("the path is taken: {0}")]
    Path(String),
    #[error("no readers for sourceOnDemandCloseAfter")]
    Idle,
    #[error("no answer to {0} within {1:?}")]
    NoAnswer(&'static str, Duration),
}

/// How long one RTSP request of the connection phase may take: a camera that accepts the
/// TCP connection and then says nothing must not stall the retry loop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

async fn bounded<T>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, retina::Error>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SourceError::NoAnswer(what, REQUEST_TIMEOUT)),
    }
}

/// Runs a pulled source for ever (until the server stops).
pub async fn run(path: String, conf: PathConf, paths: Arc<PathManager>, ctl: Arc<SourceControl>) {
    // Subscribed by `SourceControl::new`, before the task was spawned: a reader asking for
    // the stream before this task first runs must not be missed.
    let Some(mut demand) = ctl.take_demand() else {
        return;
    };
    let Some(url) = conf.source_url().map(str::to_string) else {
        return;
    };
    let mut backoff = BACKOFF_MIN;
    let mut attempt: u32 = 0;
    // Held across reconnects so readers stay attached during the grace period.
    let mut publisher: Option<Publisher> = None;
    let mut lost_at: Option<Instant> = None;
    // `automatic` starts with UDP and falls back to TCP for good when UDP brings nothing
    // (a NAT or firewall in the way), like MediaMTX.
    let mut transport = match conf.rtsp_transport {
        SourceTransport::Tcp => Transport::Tcp(Default::default()),
        SourceTransport::Udp | SourceTransport::Automatic => Transport::Udp(Default::default()),
    };
    let mut need_demand = conf.source_on_demand;
    let mut last_demand = Instant::now();
    loop {
        if need_demand {
            ctl.state.send_replace(SourceState::Idle);
            if demand.changed().await.is_err() {
                return;
            }
            need_demand = false;
            last_demand = Instant::now();
        }
        attempt += 1;
        ctl.state.send_replace(SourceState::Connecting);
        let started = Instant::now();
        let mut got_packets = false;
        let link = Link {
            transport: transport.clone(),
            got_packets: &mut got_packets,
            lost_at: &mut lost_at,
        };
        let result = session(&path, &url, &conf, &paths, &mut publisher, link, &ctl).await;
        if conf.rtsp_transport == SourceTransport::Automatic
            && matches!(transport, Transport::Udp(_))
            && !got_packets
            && !matches!(result, Err(SourceError::Idle))
        {
            info!(path, "no packets over UDP: switching the source to TCP");
            transport = Transport::Tcp(Default::default());
            continue;
        }
        if result.is_err() && *ctl.state.borrow() != SourceState::Ready {
            paths
                .telemetry
                .latencies
                .record(op::RTSP_SOURCE_CONNECT, started.elapsed(), false);
        }
        let reason = match result {
            Ok(()) => SourceError::Ended.to_string(),
            Err(SourceError::Idle) => {
                info!(path, "on-demand source released: no readers");
                // Demand seen while it ran is served; wait for a new reader.
                demand.borrow_and_update();
                need_demand = true;
                publisher = None;
                lost_at = None;
                backoff = BACKOFF_MIN;
                attempt = 0;
                continue;
            }
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = BACKOFF_MIN;
        }
        warn!(path, attempt, retry_in = ?backoff, reason, "RTSP source failed");
        ctl.state.send_replace(SourceState::Failed(reason));
        if publisher.is_some() {
            let since = *lost_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= conf.source_reconnect_grace {
                info!(
                    path,
                    "source still down after sourceReconnectGrace: closing its readers"
                );
                publisher = None;
            }
        }
        let wait = backoff;
        // x1.5 rather than x2: a camera back after a few seconds is picked up within ~1 s.
        backoff = backoff.mul_f32(1.5).min(BACKOFF_MAX);
        // Wait out the backoff, but close readers on time if the grace ends meanwhile.
        let grace_left = lost_at
            .filter(|_| publisher.is_some())
            .map(|t| conf.source_reconnect_grace.saturating_sub(t.elapsed()));
        match grace_left {
            Some(left) if left < wait => {
                tokio::time::sleep(left).await;
                info!(
                    path,
                    "source still down after sourceReconnectGrace: closing its readers"
                );
                publisher = None;
                tokio::time::sleep(wait - left).await;
            }
            _ => tokio::time::sleep(wait).await,
        }
        if publisher.is_none() {
            lost_at = None;
            if conf.source_on_demand {
                if demand.has_changed().unwrap_or(false) {
                    demand.borrow_and_update();
                    last_demand = Instant::now();
                }
                // Nobody attached and nobody waiting any more: stop until the next reader.
                if last_demand.elapsed() > conf.source_on_demand_start_timeout {
                    need_demand = true;
                    attempt = 0;
                    backoff = BACKOFF_MIN;
                }
            }
        }
    }
}

fn parse_url(url: &str) -> Result<(url::Url, Option<Credentials>), SourceError> {
    let mut u = url::Url::parse(url).map_err(|e| SourceError::Url(format!("{url}: {e}")))?;
    let creds = (!u.username().is_empty()).then(|| Credentials {
        username: percent_decode(u.username()),
        password: percent_decode(u.password().unwrap_or_default()),
    });
    // retina takes credentials separately; they must not travel in the URL.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    Ok((u, creds))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// How one session connects, and what it reports back to the retry loop.
struct Link<'a> {
    transport: Transport,
    got_packets: &'a mut bool,
    lost_at: &'a mut Option<Instant>,
}

/// One connection to the camera, from DESCRIBE until it fails.
async fn session(
    path: &str,
    url: &str,
    conf: &PathConf,
    paths: &Arc<PathManager>,
    publisher: &mut Option<Publisher>,
    link: Link<'_>,
    ctl: &SourceControl,
) -> Result<(), SourceError> {
    let Link {
        transport,
        got_packets,
        lost_at,
    } = link;
    let (url, creds) = parse_url(url)?;
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("hubcast/{}", env!("CARGO_PKG_VERSION")));
    let connect_started = Instant::now();
    let mut session = bounded("DESCRIBE", Session::describe(url, options)).await?;
    let medias = parse_media(session.sdp()).map_err(|e| SourceError::Sdp(e.to_string()))?;

    let n = session.streams().len().min(medias.len());
    let crate::codec::Selection {
        tracks,
        media_to_track,
        notes,
    } = crate::codec::select_tracks(&medias[..n]);
    if tracks.is_empty() {
        let why: Vec<String> = notes
            .iter()
            .map(|(i, e)| format!("media {i}: {e}"))
            .collect();
        return Err(SourceError::NoUsableTrack(why.join("; ")));
    }
    for (media, note) in &notes {
        info!(path, media, "{note}");
    }
    for (i, t) in media_to_track.iter().enumerate() {
        if t.is_some() {
            let setup = session.setup(i, SetupOptions::default().transport(transport.clone()));
            bounded("SETUP", setup).await?;
        }
    }
    let mut playing = bounded("PLAY", session.play(PlayOptions::default())).await?;

    // Same track layout as before the reconnect: keep the hub (and its readers).
    let hub = match publisher.as_ref() {
        Some(p) if same_layout(&p.hub.tracks(), &tracks) => {
            for (i, t) in tracks.iter().enumerate() {
                if t != &p.hub.tracks()[i]
                    && matches!(&t.codec, crate::path::Codec::H264(ps) if ps.sps.is_some())
                {
                    p.hub.update_track(i, t.clone());
                }
            }
            p.hub.discontinuity();
            Arc::clone(&p.hub)
        }
        _ => {
            *publisher = None;
            let p = paths
                .publish_source(path, tracks)
                .map_err(|e| SourceError::Path(e.to_string()))?;
            let hub = Arc::clone(&p.hub);
            hub.set_source_label("rtspSource", String::new());
            *publisher = Some(p);
            hub
        }
    };
    info!(path, connect = ?connect_started.elapsed(), transport = %transport, "RTSP source ready");
    ctl.state.send_replace(SourceState::Ready);
    *lost_at = None;
    paths
        .telemetry
        .latencies
        .record(op::RTSP_SOURCE_CONNECT, connect_started.elapsed(), true);
    let mut ingest = Ingest::new(Arc::clone(&hub), &media_to_track, H264Mode::Reframe);
    let mut idle_since: Option<Instant> = None;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            item = tokio::time::timeout(PACKET_TIMEOUT, playing.next()) => {
                let item = match item {
                    Err(_) => return Err(SourceError::Silent(PACKET_TIMEOUT)),
                    Ok(None) => return Ok(()),
                    Ok(Some(r)) => r?,
                };
                if let PacketItem::Rtcp(rtcp) = &item {
                    ingest.push_rtcp(rtcp.raw());
                }
                if let PacketItem::Rtp(pkt) = item {
                    *got_packets = true;
                    let media = pkt.stream_id();
                    let h = pkt.header();
                    let pkt = RtpPacket {
                        marker: h.mark(),
                        payload_type: h.payload_type(),
                        sequence: h.sequence_number(),
                        // The wire timestamp: retina's extended one starts at zero per session.
                        timestamp: h.timestamp(),
                        ssrc: h.ssrc(),
                        payload: pkt.into_payload_bytes(),
                    };
                    if let Err(e) = ingest.push_packet(media, &pkt) {
                        debug!(path, error = %e, "dropped packet from the camera");
                    }
                }
            }
            _ = check.tick(), if conf.source_on_demand => {
                if hub.reader_count() > 0 {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= conf.source_on_demand_close_after {
                    return Err(SourceError::Idle);
                }
            }
        }
    }
}

fn same_layout(a: &[Track], b: &[Track]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.is_video() == y.is_video())
}
