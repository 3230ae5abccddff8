//! Turns a source's RTP packets into hub packets: H.264 is repacketized once here for
//! every reader; Opus passes through.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tracing::debug;

use super::hub::{Codec, Hub, Packet};
use crate::media::h264::{OutPacket, Reframer};
use crate::media::rtp;

enum TrackIngest {
    H264 {
        // Boxed: the reframer's scratch state would make every Opus track as large.
        reframer: Box<Reframer>,
        out: Vec<OutPacket>,
    },
    Opus,
}

/// One publisher's input side. Media indexes are the publisher's own (e.g. SDP order);
/// `map` sends each to a hub track or drops it.
pub struct Ingest {
    hub: Arc<Hub>,
    /// media index -> (hub track index, state)
    tracks: Vec<Option<(u8, TrackIngest)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rtp(#[from] rtp::RtpError),
    #[error(transparent)]
    H264(#[from] crate::media::h264::H264Error),
}

impl Ingest {
    /// `media_to_track[i]` is the hub track of the publisher's media `i`, if it is taken.
    pub fn new(hub: Arc<Hub>, media_to_track: &[Option<u8>]) -> Self {
        let tracks = hub.tracks();
        let state = media_to_track
            .iter()
            .map(|t| {
                let idx = (*t)?;
                let track = tracks.get(idx as usize)?;
                let ingest = match &track.codec {
                    Codec::H264(params) => TrackIngest::H264 {
                        reframer: Box::new(Reframer::new(params.clone())),
                        out: Vec::with_capacity(64),
                    },
                    Codec::Opus { .. } => TrackIngest::Opus,
                };
                Some((idx, ingest))
            })
            .collect();
        Ingest { hub, tracks: state }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// One RTP packet of media `media`. Broken packets are counted and dropped; the
    /// error says why (the caller may log it, rate-limited).
    pub fn push_rtp(&mut self, media: usize, data: &Bytes) -> Result<(), IngestError> {
        let Some(Some((track, state))) = self.tracks.get_mut(media) else {
            return Ok(());
        };
        let pkt = match rtp::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.hub.stats.invalid_in.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        match state {
            TrackIngest::Opus => {
                self.hub.write(Packet {
                    track: *track,
                    timestamp: pkt.timestamp,
                    marker: pkt.marker,
                    au_start: true,
                    keyframe: false,
                    payload: pkt.payload,
                });
                Ok(())
            }
            TrackIngest::H264 { reframer, out } => {
                out.clear();
                let res =
                    reframer.push_rtp(pkt.sequence, pkt.timestamp, pkt.marker, &pkt.payload, out);
                if reframer.take_params_changed() {
                    debug!(path = self.hub.path(), "H.264 parameters changed in-band");
                    self.hub.update_track(
                        *track as usize,
                        super::Track::h264(reframer.params().clone()),
                    );
                }
                for o in out.drain(..) {
                    self.hub.write(Packet {
                        track: *track,
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
    }
}
