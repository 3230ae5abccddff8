//! Turns a source's RTP packets into hub packets: H.264 is repacketized once here for
//! every reader (or passed through when it already fits, for WebRTC publishers); Opus
//! passes through.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tracing::debug;

use super::hub::{Codec, Hub, Packet};
use crate::codec::h264::passthrough::H264Passthrough;
use crate::codec::h264::{H264Error, OutPacket, Reframer};
use crate::media::rtp::{self, RtpPacket};

enum TrackIngest {
    // Boxed: the H.264 state would otherwise make every audio track as large.
    H264(Box<Reframer>),
    H264Passthrough(Box<H264Passthrough>),
    /// Audio whose every packet is a frame (Opus, G.711, G.722): passed through as it is.
    Frames,
}

/// How H.264 from this publisher is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Mode {
    /// Cameras: any packetization in, our packetization out.
    Reframe,
    /// WebRTC publishers: packets already fit and pass as they are.
    Passthrough,
}

/// One publisher's input side. Media indexes are the publisher's own (e.g. SDP order).
pub struct Ingest {
    hub: Arc<Hub>,
    /// media index -> (hub track index, state)
    tracks: Vec<Option<(u8, TrackIngest)>>,
    out: Vec<OutPacket>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rtp(#[from] rtp::RtpError),
    #[error(transparent)]
    H264(#[from] H264Error),
}

impl Ingest {
    /// `media_to_track[i]` is the hub track of the publisher's media `i`, if it is taken.
    pub fn new(hub: Arc<Hub>, media_to_track: &[Option<u8>], mode: H264Mode) -> Self {
        let tracks = hub.tracks();
        let state = media_to_track
            .iter()
            .map(|t| {
                let idx = (*t)?;
                let track = tracks.get(idx as usize)?;
                let ingest = match (&track.codec, mode) {
                    (Codec::H264(params), H264Mode::Reframe) => {
                        TrackIngest::H264(Box::new(Reframer::new(params.clone())))
                    }
                    (Codec::H264(_), H264Mode::Passthrough) => {
                        TrackIngest::H264Passthrough(Box::default())
                    }
                    (Codec::Opus { .. } | Codec::G711(_) | Codec::G722, _) => TrackIngest::Frames,
                };
                Some((idx, ingest))
            })
            .collect();
        Ingest {
            hub,
            tracks: state,
            out: Vec::with_capacity(64),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// One RTP packet of media `media`, as received. Broken packets are counted and
    /// dropped; the error says why (the caller may log it).
    pub fn push_rtp(&mut self, media: usize, data: &Bytes) -> Result<(), IngestError> {
        if !matches!(self.tracks.get(media), Some(Some(_))) {
            return Ok(());
        }
        match rtp::parse(data) {
            Ok(p) => self.push_packet(media, &p),
            Err(e) => {
                self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// One RTP packet already parsed (e.g. by a WebRTC stack).
    pub fn push_packet(&mut self, media: usize, pkt: &RtpPacket) -> Result<(), IngestError> {
        let Some(Some((track, state))) = self.tracks.get_mut(media) else {
            return Ok(());
        };
        let track = *track;
        self.out.clear();
        let res = match state {
            TrackIngest::Frames => {
                self.hub.write(Packet {
                    track,
                    timestamp: pkt.timestamp,
                    marker: pkt.marker,
                    au_start: true,
                    keyframe: false,
                    payload: pkt.payload.clone(),
                });
                return Ok(());
            }
            TrackIngest::H264(r) => {
                let res = r.push_rtp(
                    pkt.sequence,
                    pkt.timestamp,
                    pkt.marker,
                    &pkt.payload,
                    &mut self.out,
                );
                if r.take_params_changed() {
                    params_changed(&self.hub, track, r.params().clone());
                }
                res
            }
            TrackIngest::H264Passthrough(p) => {
                let res = p.push_rtp(
                    pkt.sequence,
                    pkt.timestamp,
                    pkt.marker,
                    &pkt.payload,
                    &mut self.out,
                );
                if p.take_params_changed() {
                    params_changed(&self.hub, track, p.params().clone());
                }
                // Without NACK a lost packet breaks the picture until the next keyframe:
                // ask for one now (the publisher side rate-limits).
                if res.as_ref().is_ok_and(|i| i.loss) {
                    self.hub.request_keyframe();
                }
                res.map(|_| ())
            }
        };
        for o in self.out.drain(..) {
            self.hub.write(Packet {
                track,
                timestamp: o.timestamp,
                marker: o.marker,
                au_start: o.au_start,
                keyframe: o.keyframe,
                payload: o.payload,
            });
        }
        if res.is_err() {
            self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
        }
        Ok(res?)
    }
}

fn params_changed(hub: &Hub, track: u8, params: crate::codec::h264::ParamSets) {
    debug!(path = hub.path(), "H.264 parameters changed in-band");
    hub.update_track(track as usize, super::Track::h264(params));
}
