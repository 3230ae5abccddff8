//! One RTSP connection and its session: ANNOUNCE -> SETUP (TCP interleaved or UDP) -> RECORD.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::message::{self, Incoming, Method, Request, Response};
use super::play::{self, PlayTarget, PlayTrack};
use super::server::{ConnInfo, RtspServer, SessionInfo, UdpRoute};
use super::transport::{parse_transport, Lower, TransportSpec};
use super::url::{match_control, path_of_url, split_control};
use crate::auth::{gate, Action, Auth, AuthRequest, Credentials, Protocol};
use crate::codec::sdp::{build_describe, parse_media, MediaDesc};
use crate::config::RtspTransport;
use crate::media::rtp;
use crate::path::{Hub, PathError, Publisher, Track};
use crate::stream::ingest::{H264Mode, Ingest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

/// Advertised in `Session: id;timeout=N`; clients send keep-alives well within it.
const SESSION_TIMEOUT_SECS: u64 = 60;
/// A UDP publisher's control connection may stay silent this long (its media is watched).
const IDLE_CONTROL_LIMIT: Duration = Duration::from_secs(24 * 3600);
const PUBLIC_METHODS: &str = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// A reader's session: the path it reads and where each track goes.
struct Playing {
    hub: Arc<Hub>,
    tracks: Vec<Option<PlayTrack>>,
    player: Option<JoinHandle<String>>,
}

struct Announced {
    path: String,
    base_url: String,
    medias: Vec<MediaDesc>,
    tracks: Vec<Track>,
    media_to_track: Vec<Option<u8>>,
}

#[derive(Clone, Copy)]
enum Setup {
    Tcp,
    Udp { client_rtp: SocketAddr },
}

pub struct Connection {
    server: Arc<RtspServer>,
    peer: SocketAddr,
    session_id: Option<String>,
    announced: Option<Announced>,
    setups: Vec<Option<Setup>>,
    /// Interleaved RTP channel -> media index.
    channels: [Option<u8>; 256],
    publisher: Option<Publisher>,
    ingest: Option<Arc<Mutex<Ingest>>>,
    media_last_seen: Arc<AtomicU64>,
    udp_routes: Vec<SocketAddr>,
    playing: Option<Playing>,
    writer: Option<Arc<tokio::sync::Mutex<OwnedWriteHalf>>>,
    info: Arc<ConnInfo>,
    /// The path and action this connection proved it may do.
    /// What this connection was last allowed, and by which auth configuration: a change
    /// of users or method (hot reload) makes the next request check again.
    authorized: Option<(String, Action, Arc<Auth>)>,
}

/// What a handled request asks of the connection loop.
enum After {
    Continue,
    Close(String),
}

impl Connection {
    pub fn new(server: Arc<RtspServer>, peer: SocketAddr) -> Self {
        Connection {
            peer,
            session_id: None,
            announced: None,
            setups: Vec::new(),
            channels: [None; 256],
            publisher: None,
            ingest: None,
            media_last_seen: Arc::new(AtomicU64::new(0)),
            udp_routes: Vec::new(),
            playing: None,
            writer: None,
            info: server.register(peer),
            authorized: None,
            server,
        }
    }

    fn set_session(&self, state: &'static str, path: &str, transport: Option<&'static str>) {
        if let Some(id) = &self.session_id {
            self.info.set_session(SessionInfo {
                id: id.clone(),
                state,
                path: path.to_string(),
                transport,
            });
        }
    }

    fn is_playing(&self) -> bool {
        self.playing.as_ref().is_some_and(|p| p.player.is_some())
    }

    fn recording_udp(&self) -> bool {
        self.publisher.is_some() && !self.udp_routes.is_empty()
    }

    fn playing_udp(&self) -> bool {
        self.is_playing() && !self.udp_routes.is_empty()
    }

    pub async fn serve(mut self, stream: TcpStream) {
        let (mut rd, wr) = stream.into_split();
        let wr = Arc::new(tokio::sync::Mutex::new(wr));
        self.writer = Some(Arc::clone(&wr));
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut out = BytesMut::with_capacity(1024);
        let read_timeout = self.server.config().read_timeout;
        let write_timeout = self.server.config().write_timeout;
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        let kicked_by_api = self.info.kicked();
        tokio::pin!(kicked_by_api);
        let mut parser = message::Parser::default();
        // When the text message now pending began to arrive: a request dribbled in a byte
        // at a time must still be complete within readTimeout.
        let mut pending_since: Option<std::time::Instant> = None;
        let reason = 'conn: loop {
            loop {
                let parsed = parser.parse(&mut buf);
                if !matches!(parsed, Ok(None)) {
                    pending_since = None;
                }
                match parsed {
                    Ok(Some(Incoming::Request(req))) => {
                        let (resp, after) = self.handle(&req).await;
                        out.clear();
                        resp.write_to(&mut out);
                        // Bounded: a client that stops reading would otherwise park the
                        // loop here, out of reach of every other timer.
                        let write = async { wr.lock().await.write_all(&out).await };
                        match tokio::time::timeout(write_timeout, write).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => break 'conn format!("write failed: {e}"),
                            Err(_) => {
                                break 'conn format!(
                                    "client stopped reading: reply not written within writeTimeout ({write_timeout:?})"
                                )
                            }
                        }
                        if let After::Close(reason) = after {
                            break 'conn reason;
                        }
                    }
                    Ok(Some(Incoming::Interleaved { channel, payload })) => {
                        self.on_interleaved(channel, &payload)
                    }
                    Ok(Some(Incoming::Response { .. })) => {}
                    Ok(None) => break,
                    Err(e) => {
                        out.clear();
                        Response::new(e.status())
                            .body("text/plain", format!("{e}\n"))
                            .write_to(&mut out);
                        let write = async { wr.lock().await.write_all(&out).await };
                        let _ = tokio::time::timeout(write_timeout, write).await;
                        break 'conn format!("bad request: {e}");
                    }
                }
            }
            if !parser.pending_text(&buf) {
                pending_since = None;
            } else if pending_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                > read_timeout
            {
                break format!("request not complete within readTimeout ({read_timeout:?})");
            }
            buf.reserve(16 * 1024);
            let recording = self.publisher.is_some();
            let recording_udp = self.recording_udp();
            let playing_udp = self.playing_udp();
            // A publisher's readTimeout counts media and RTCP, not bytes (the watchdog checks
            // it): a keep-alive or a stray byte every few seconds must not hold a path.
            // Readers owe us nothing on the control connection while they play.
            let read_limit = if recording || self.is_playing() {
                IDLE_CONTROL_LIMIT
            } else {
                read_timeout
            };
            tokio::select! {
                r = tokio::time::timeout(read_limit, rd.read_buf(&mut buf)) => match r {
                    Err(_) => break format!("no data within readTimeout ({read_timeout:?})"),
                    Ok(Ok(0)) => break "connection closed by the client".to_string(),
                    Ok(Ok(n)) => {
                        self.info.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => break format!("read failed: {e}"),
                },
                _ = watchdog.tick(), if recording || playing_udp => {
                    let idle = self.server.now_ms().saturating_sub(self.media_last_seen.load(Ordering::Relaxed));
                    if idle > read_timeout.as_millis() as u64 {
                        break match (recording, recording_udp) {
                            (true, true) => format!("no UDP packets within readTimeout ({read_timeout:?})"),
                            (true, false) => format!("no RTP or RTCP within readTimeout ({read_timeout:?})"),
                            _ => format!("no RTCP receiver report from the UDP reader within readTimeout ({read_timeout:?})"),
                        };
                    }
                }
                _ = kicked(&mut self.publisher) => break "replaced by another publisher".to_string(),
                r = player_done(&mut self.playing) => break r,
                _ = &mut kicked_by_api => break "kicked via the control API".to_string(),
            }
        };
        self.finish(&reason);
    }

    fn finish(&mut self, reason: &str) {
        self.server.unregister(&self.info.id);
        for r in self.udp_routes.drain(..) {
            self.server.remove_route(&r, &self.media_last_seen);
        }
        if let Some(p) = self.playing.take() {
            if let Some(task) = p.player {
                task.abort();
                RtspServer::log_session_end(
                    "reader",
                    p.hub.path(),
                    self.peer,
                    self.session_id.as_deref().unwrap_or("-"),
                    reason,
                );
            }
        }
        if let Some(p) = self.publisher.take() {
            RtspServer::log_session_end(
                "publisher",
                p.hub.path(),
                self.peer,
                self.session_id.as_deref().unwrap_or("-"),
                reason,
            );
        } else {
            debug!(peer = %self.peer, reason, "RTSP connection closed");
        }
    }

    fn on_interleaved(&mut self, channel: u8, payload: &Bytes) {
        let Some(ingest) = &self.ingest else {
            return;
        };
        let Some(media) = self.channels[channel as usize] else {
            // RTCP on the channel after a set-up one proves the publisher alive.
            let rtcp_of_setup = channel % 2 == 1 && self.channels[channel as usize - 1].is_some();
            if rtcp_of_setup && rtp::is_rtcp(payload) {
                self.media_last_seen
                    .store(self.server.now_ms(), Ordering::Relaxed);
                ingest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_rtcp(payload);
            }
            return;
        };
        let mut ingest = ingest.lock().unwrap_or_else(|p| p.into_inner());
        match ingest.push_rtp(media as usize, payload) {
            Ok(()) => self
                .media_last_seen
                .store(self.server.now_ms(), Ordering::Relaxed),
            Err(e) => {
                debug!(path = ingest.hub().path(), channel, error = %e, "dropped interleaved packet")
            }
        }
    }

    async fn handle(&mut self, req: &Request) -> (Response, After) {
        let cseq = req.cseq().unwrap_or("0").to_string();
        let (resp, after) = if let Some(s) = req.session() {
            if self.session_id.as_deref() != Some(s) && req.method != Method::Options {
                (text(454, format!("unknown session {s}")), After::Continue)
            } else {
                self.dispatch(req).await
            }
        } else {
            self.dispatch(req).await
        };
        let mut resp = resp.header("CSeq", cseq).header("Server", "hubcast");
        if let Some(id) = &self.session_id {
            resp = resp.header("Session", format!("{id};timeout={SESSION_TIMEOUT_SECS}"));
        }
        (resp, after)
    }

    async fn dispatch(&mut self, req: &Request) -> (Response, After) {
        let r = match req.method {
            Method::Options => Ok(Response::new(200).header("Public", PUBLIC_METHODS)),
            Method::Announce => match self.authorize(req, Action::Publish).await {
                Ok(()) => self.announce(req),
                Err(r) => Err(r),
            },
            Method::Setup => self.setup(req).await,
            Method::Record => self.record(),
            Method::GetParameter | Method::SetParameter => Ok(Response::new(200)),
            Method::Teardown => return (Response::new(200), After::Close("TEARDOWN".into())),
            Method::Describe => self.describe(req).await,
            Method::Play => self.play(req),
            Method::Pause => self.pause(),
            _ => Err(text(
                501,
                format!("method {} is not implemented", req.method),
            )),
        };
        (r.unwrap_or_else(|e| e), After::Continue)
    }

    fn announce(&mut self, req: &Request) -> Result<Response, Response> {
        if self.announced.is_some() || self.playing.is_some() {
            return Err(text(455, "already announced or reading".into()));
        }
        let ct = req.header("Content-Type").unwrap_or("");
        if !ct.trim().eq_ignore_ascii_case("application/sdp") {
            return Err(text(
                400,
                format!("ANNOUNCE needs Content-Type application/sdp, got {ct:?}"),
            ));
        }
        let path = path_of_url(&req.uri).ok_or_else(|| {
            text(
                400,
                format!("cannot read a path from the URL {:?}", req.uri),
            )
        })?;
        let medias = parse_media(&req.body).map_err(|e| text(400, format!("invalid SDP: {e}")))?;
        if medias.len() > MAX_MEDIAS {
            return Err(text(
                400,
                format!(
                    "the SDP has {} media sections; at most {MAX_MEDIAS} are accepted",
                    medias.len()
                ),
            ));
        }
        let crate::codec::Selection {
            tracks,
            media_to_track,
            notes,
        } = crate::codec::select_tracks(&medias);
        for (media, note) in &notes {
            warn!(path, media, "{note}");
        }
        if tracks.is_empty() {
            let why: Vec<String> = notes
                .iter()
                .map(|(media, e)| format!("media {media}: {e}"))
                .collect();
            return Err(text(
                406,
                format!("the SDP has no track hubcast carries: {}", why.join("; ")),
            ));
        }
        match self.server.paths.held(&path) {
            Ok(true) => {
                let config = self.server.config();
                let conf = config.path_conf(&path);
                if !conf.is_some_and(|c| c.override_publisher) {
                    return Err(text(400, PathError::Busy(path).to_string()));
                }
            }
            Ok(false) => {}
            Err(e) => return Err(path_error(e)),
        }
        self.setups = vec![None; medias.len()];
        self.announced = Some(Announced {
            path,
            base_url: req.uri.clone(),
            medias,
            tracks,
            media_to_track,
        });
        Ok(Response::new(200))
    }

    async fn setup(&mut self, req: &Request) -> Result<Response, Response> {
        if self.publisher.is_some() {
            return Err(text(455, "SETUP after RECORD".into()));
        }
        let Some(ann) = &self.announced else {
            return self.setup_play(req).await;
        };
        let media = match_control(&ann.medias, &ann.base_url, &req.uri)
            .ok_or_else(|| text(404, format!("no media matches the SETUP URL {:?}", req.uri)))?;
        let spec = self.pick_transport(req)?;
        let reply = match spec.lower {
            Lower::Tcp => {
                let (rtp, rtcp) = spec.interleaved.unwrap_or_else(|| default_channels(media));
                self.channels[rtp as usize] = Some(media as u8);
                self.setups[media] = Some(Setup::Tcp);
                TransportSpec {
                    lower: Lower::Tcp,
                    multicast: false,
                    interleaved: Some((rtp, rtcp)),
                    client_port: None,
                    server_port: None,
                    mode_record: true,
                    ssrc: None,
                }
            }
            Lower::Udp => {
                let (reply, client_rtp) = self.udp_transport(&spec, true, None)?;
                self.setups[media] = Some(Setup::Udp { client_rtp });
                reply
            }
        };
        if self.session_id.is_none() {
            self.session_id = Some(self.server.new_session_id());
        }
        Ok(Response::new(200).header("Transport", reply.to_header()))
    }

    /// The first transport of the client's list that is enabled here.
    fn pick_transport(&self, req: &Request) -> Result<TransportSpec, Response> {
        let header = req
            .header("Transport")
            .ok_or_else(|| text(400, "SETUP without a Transport header".into()))?;
        let specs = parse_transport(header).map_err(|e| text(461, format!("{e}")))?;
        let config = self.server.config();
        let allowed = &config.rtsp_transports;
        specs
            .into_iter()
            .find(|s| match s.lower {
                Lower::Tcp => allowed.contains(&RtspTransport::Tcp),
                Lower::Udp => {
                    allowed.contains(&RtspTransport::Udp) && !s.multicast && s.client_port.is_some()
                }
            })
            .ok_or_else(|| {
                text(
                    461,
                    format!(
                        "none of the offered transports is enabled (rtspTransports: {allowed:?})"
                    ),
                )
            })
    }

    /// The reply to a UDP SETUP (our RTP/RTCP ports) and where the client's RTP port is.
    fn udp_transport(
        &self,
        spec: &TransportSpec,
        mode_record: bool,
        ssrc: Option<u32>,
    ) -> Result<(TransportSpec, SocketAddr), Response> {
        let (Some(cp), Some(rtp_port), Some(rtcp_port)) = (
            spec.client_port,
            self.server.rtp_port,
            self.server.rtcp_port,
        ) else {
            return Err(text(461, "UDP needs client_port".into()));
        };
        let reply = TransportSpec {
            lower: Lower::Udp,
            multicast: false,
            interleaved: None,
            client_port: Some(cp),
            server_port: Some((rtp_port, rtcp_port)),
            mode_record,
            ssrc,
        };
        let client_rtp = SocketAddr::new(self.peer.ip(), cp.0);
        if self.server.route_taken(client_rtp, &self.media_last_seen) {
            return Err(text(
                461,
                format!("client_port {} is in use by another RTSP session", cp.0),
            ));
        }
        Ok((reply, client_rtp))
    }

    /// The path a reader's URL names, and its live stream.
    async fn reader_stream(
        &self,
        url: &str,
    ) -> Result<(String, Option<String>, Arc<Hub>), Response> {
        let full = path_of_url(url)
            .ok_or_else(|| text(400, format!("cannot read a path from the URL {url:?}")))?;
        let (path, control) = split_control(&full);
        crate::config::validate_path_name(&path)
            .map_err(|e| text(400, format!("invalid path name: {e}")))?;
        let hub = self
            .server
            .paths
            .wait_stream(&path)
            .await
            .map_err(path_error)?;
        Ok((path, control, hub))
    }

    /// Checks the request's credentials (Basic or Digest) for `action` on the URL's path,
    /// once per path and action on this connection.
    async fn authorize(&mut self, req: &Request, action: Action) -> Result<(), Response> {
        let full = path_of_url(&req.uri).unwrap_or_default();
        let (path, _) = split_control(&full);
        let auth = self.server.paths.auth();
        if self
            .authorized
            .as_ref()
            .is_some_and(|(p, a, by)| *p == path && *a == action && Arc::ptr_eq(by, &auth))
        {
            return Ok(());
        }
        let credentials = req
            .header("Authorization")
            .map(Auth::parse_authorization)
            .unwrap_or(Credentials::None);
        let method = req.method.as_str().to_string();
        let check = AuthRequest {
            credentials: &credentials,
            ip: self.peer.ip(),
            action,
            path: &path,
            protocol: Protocol::Rtsp,
            id: self.session_id.as_deref(),
            query: req.uri.split_once('?').map_or("", |(_, q)| q),
            rtsp_method: Some(&method),
            rtsp_uri: &req.uri,
            rtsp_conn: &self.info.id,
        };
        match gate::check(&auth, &check).await {
            Ok(()) => {
                self.authorized = Some((path, action, Arc::clone(&auth)));
                Ok(())
            }
            Err(refusal) => {
                let status = if refusal.busy { 503 } else { 401 };
                let mut r =
                    Response::new(status).body("text/plain", format!("{}\n", refusal.message));
                for c in refusal.challenges {
                    r = r.header("WWW-Authenticate", c);
                }
                Err(r)
            }
        }
    }

    async fn describe(&mut self, req: &Request) -> Result<Response, Response> {
        self.authorize(req, Action::Read).await?;
        let (_, _, hub) = self.reader_stream(&req.uri).await?;
        let sdp = build_describe(&play::describe_medias(&hub.tracks()));
        let base = format!("{}/", req.uri.trim_end_matches('/'));
        Ok(Response::new(200)
            .header("Content-Base", base)
            .body("application/sdp", sdp))
    }

    async fn setup_play(&mut self, req: &Request) -> Result<Response, Response> {
        self.authorize(req, Action::Read).await?;
        if self.is_playing() {
            return Err(text(455, "SETUP while playing".into()));
        }
        let (_, control, hub) = self.reader_stream(&req.uri).await?;
        let tracks = hub.tracks();
        let index = match control.as_deref().and_then(|c| c.split_once('=')) {
            Some((_, n)) => n.parse::<usize>().ok(),
            None if tracks.len() == 1 => Some(0),
            None => None,
        }
        .filter(|i| *i < tracks.len())
        .ok_or_else(|| text(404, format!("no track matches the SETUP URL {:?}", req.uri)))?;
        if let Some(p) = &self.playing {
            if !Arc::ptr_eq(&p.hub, &hub) {
                return Err(text(
                    455,
                    "all tracks of a session must come from one path".into(),
                ));
            }
        }
        let spec = self.pick_transport(req)?;
        let ssrc: u32 = rand::random();
        let (target, reply) = match spec.lower {
            Lower::Tcp => {
                let (rtp, rtcp) = spec.interleaved.unwrap_or_else(|| default_channels(index));
                let reply = TransportSpec {
                    lower: Lower::Tcp,
                    multicast: false,
                    interleaved: Some((rtp, rtcp)),
                    client_port: None,
                    server_port: None,
                    mode_record: false,
                    ssrc: Some(ssrc),
                };
                (PlayTarget::Tcp { channel: rtp }, reply)
            }
            Lower::Udp => {
                let (reply, rtp) = self.udp_transport(&spec, false, Some(ssrc))?;
                (PlayTarget::Udp { rtp }, reply)
            }
        };
        let playing = self.playing.get_or_insert_with(|| Playing {
            hub: Arc::clone(&hub),
            tracks: vec![None; tracks.len()],
            player: None,
        });
        playing.tracks[index] = Some(PlayTrack {
            target,
            ssrc,
            seq: rand::random(),
            payload_type: play::payload_type(&tracks[index]),
        });
        if self.session_id.is_none() {
            self.session_id = Some(self.server.new_session_id());
        }
        Ok(Response::new(200).header("Transport", reply.to_header()))
    }

    fn play(&mut self, req: &Request) -> Result<Response, Response> {
        let Some(playing) = &mut self.playing else {
            return Err(text(455, "PLAY before SETUP".into()));
        };
        if playing.player.is_some() {
            return Ok(Response::new(200));
        }
        let max = self
            .server
            .config()
            .path_conf(playing.hub.path())
            .map_or(0, |c| c.max_readers);
        if max > 0 && playing.hub.reader_count() >= max {
            return Err(text(
                503,
                format!(
                    "path '{}' has reached maxReaders ({max})",
                    playing.hub.path()
                ),
            )
            .header("Retry-After", crate::util::RETRY_AFTER_SECS.to_string()));
        }
        let reader = playing
            .hub
            .add_reader_as("rtspSession", self.session_id.clone().unwrap_or_default())
            .map_err(|e| text(404, e.to_string()))?;
        let base = req.uri.trim_end_matches('/');
        let rtp_info: Vec<String> = playing
            .tracks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some(format!("url={base}/trackID={i};seq={}", t.as_ref()?.seq)))
            .collect();
        let write_timeout = self.server.config().write_timeout;
        let task = play::run(
            reader,
            playing.tracks.clone(),
            play::Out {
                tcp: self.writer.clone(),
                udp: self.server.rtp_socket.clone(),
                write_timeout,
                info: Arc::clone(&self.info),
            },
        );
        playing.player = Some(tokio::spawn(task));
        // A UDP reader's receiver reports are how we know it is still there (MediaMTX drops
        // one after readTimeout without them), since its control connection may idle.
        self.media_last_seen
            .store(self.server.now_ms(), Ordering::Relaxed);
        for t in playing.tracks.iter().flatten() {
            if let PlayTarget::Udp { rtp } = t.target {
                let route = UdpRoute {
                    ingest: None,
                    media: 0,
                    last_seen: Arc::clone(&self.media_last_seen),
                };
                if self.server.add_route(rtp, route).is_ok() && !self.udp_routes.contains(&rtp) {
                    self.udp_routes.push(rtp);
                }
            }
        }
        let transport = match playing.tracks.iter().flatten().next().map(|t| t.target) {
            Some(PlayTarget::Udp { .. }) => "UDP",
            _ => "TCP",
        };
        let path = playing.hub.path().to_string();
        self.set_session("read", &path, Some(transport));
        let Some(playing) = &self.playing else {
            return Err(text(500, "reader state lost".into()));
        };
        info!(
            path = playing.hub.path(), peer = %self.peer,
            session = self.session_id.as_deref().unwrap_or("-"), "RTSP reader session started"
        );
        Ok(Response::new(200)
            .header("RTP-Info", rtp_info.join(","))
            .header("Range", "npt=0.000-"))
    }

    fn pause(&mut self) -> Result<Response, Response> {
        let Some(playing) = &mut self.playing else {
            return Err(text(455, "PAUSE before SETUP".into()));
        };
        if let Some(task) = playing.player.take() {
            task.abort();
        }
        // Routes come back with the next PLAY.
        for r in self.udp_routes.drain(..) {
            self.server.remove_route(&r, &self.media_last_seen);
        }
        Ok(Response::new(200))
    }

    fn record(&mut self) -> Result<Response, Response> {
        if self.publisher.is_some() {
            return Err(text(455, "already recording".into()));
        }
        let Some(ann) = &self.announced else {
            return Err(text(455, "RECORD without ANNOUNCE".into()));
        };
        let any_setup = ann
            .media_to_track
            .iter()
            .zip(&self.setups)
            .any(|(t, s)| t.is_some() && s.is_some());
        if !any_setup {
            return Err(text(
                455,
                "RECORD before SETUP of an H.264 or Opus track".into(),
            ));
        }
        let publisher = self
            .server
            .paths
            .publish(&ann.path, ann.tracks.clone(), true)
            .map_err(path_error)?;
        publisher
            .hub
            .set_source_label("rtspSession", self.session_id.clone().unwrap_or_default());
        let ingest = Arc::new(Mutex::new(Ingest::new(
            Arc::clone(&publisher.hub),
            &ann.media_to_track,
            H264Mode::Reframe,
        )));
        self.media_last_seen
            .store(self.server.now_ms(), Ordering::Relaxed);
        for (media, setup) in self.setups.iter().enumerate() {
            if let Some(Setup::Udp { client_rtp }) = setup {
                let route = UdpRoute {
                    ingest: Some(Arc::clone(&ingest)),
                    media,
                    last_seen: Arc::clone(&self.media_last_seen),
                };
                if self.server.add_route(*client_rtp, route).is_ok() {
                    self.udp_routes.push(*client_rtp);
                }
            }
        }
        let transport = if self.udp_routes.is_empty() {
            "TCP"
        } else {
            "UDP"
        };
        info!(
            path = %ann.path, peer = %self.peer, session = self.session_id.as_deref().unwrap_or("-"),
            transport, tracks = ann.tracks.len(), "RTSP publisher session started"
        );
        let path = ann.path.clone();
        self.set_session("publish", &path, Some(transport));
        self.ingest = Some(ingest);
        self.publisher = Some(publisher);
        Ok(Response::new(200))
    }
}

/// Resolves with the player's reason once it stopped (stream ended, reader too slow).
async fn player_done(p: &mut Option<Playing>) -> String {
    match p.as_mut().and_then(|p| p.player.as_mut()) {
        Some(task) => task
            .await
            .unwrap_or_else(|e| format!("player stopped: {e}")),
        None => std::future::pending().await,
    }
}

async fn kicked(p: &mut Option<Publisher>) {
    match p {
        Some(p) => p.kicked().await,
        None => std::future::pending().await,
    }
}

fn text(status: u16, reason: String) -> Response {
    debug!(status, reason, "RTSP error response");
    Response::new(status).body("text/plain", format!("{reason}\n"))
}

fn path_error(e: PathError) -> Response {
    let status = match e {
        PathError::NotConfigured(_) | PathError::NoStream(_) | PathError::SourceNotReady(..) => 404,
        PathError::BadName(_) | PathError::Busy(_) | PathError::NotPublishable(..) => 400,
    };
    text(status, e.to_string())
}

/// Media sections an ANNOUNCE may have: each takes two of the 256 interleaved channels, and
/// no camera sends more than a handful.
const MAX_MEDIAS: usize = 64;

/// Interleaved channels for media `index` when the client names none (RTP, RTCP).
fn default_channels(index: usize) -> (u8, u8) {
    let rtp = u8::try_from(2 * index.min(MAX_MEDIAS)).unwrap_or(254);
    (rtp, rtp + 1)
}
