//! The fan-out hub of one path: one source in, any number of readers out.
//!
//! The source hands the hub units (access units, frames, or packets passed through); each
//! is shared by reference with every reader, which takes the RTP it needs from the unit
//! (made once per path). Each reader has a bounded queue; the hub never waits for a reader.
//! A reader whose queue is full loses units and then skips video until the next keyframe,
//! so the decoder restarts cleanly instead of showing a smeared picture.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::{mpsc, watch};

use super::gop::{GopCache, GopSnapshot};
use super::unit::Unit;

pub use crate::codec::{Codec, Track};

/// What the hub shares with readers: a unit, cloned by one reference count per reader.
pub type Packet = Arc<Unit>;

/// Why a reader skips video until the next keyframe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    No,
    /// Joined with no cached GOP: nothing decodable before a keyframe.
    Join,
    /// Its queue overflowed: what it skips counts as dropped.
    Overflow,
}

struct ReaderSlot {
    id: u64,
    tx: mpsc::Sender<Packet>,
    wait: Wait,
    counters: Arc<ReaderCounters>,
    label: ReaderLabel,
}

/// Who a reader is, for the control API (`webRTCSession`, `rtspSession`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderLabel {
    pub kind: &'static str,
    pub id: String,
}

/// Per-reader counters, readable while the reader runs.
#[derive(Debug, Default)]
pub struct ReaderCounters {
    pub dropped: AtomicU64,
}

/// Keeps a track's timestamps continuous when its source reconnects: a new RTSP session
/// starts from a random timestamp, which players would take as a jump of hours.
#[derive(Default, Clone, Copy)]
struct TsState {
    offset: i64,
    last: Option<(i64, std::time::Instant)>,
    rebase: bool,
}

struct HubInner {
    readers: Vec<ReaderSlot>,
    gop: GopCache,
    next_reader_id: u64,
    ts: Vec<TsState>,
}

/// Totals of a hub, for metrics and tests.
#[derive(Debug, Default)]
pub struct HubStats {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Packets a reader lost because its queue was full.
    pub dropped: AtomicU64,
    /// Broken input packets the source dropped.
    pub invalid_in: AtomicU64,
}

pub struct Hub {
    path: String,
    tracks: RwLock<Vec<Track>>,
    inner: Mutex<HubInner>,
    queue_size: usize,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
    pub stats: HubStats,
    /// Readers ask for a keyframe through this (WHIP publishers forward it as RTCP PLI).
    keyframe_request: watch::Sender<u64>,
    telemetry: std::sync::OnceLock<Arc<crate::stats::Telemetry>>,
    created: std::time::SystemTime,
    source: std::sync::OnceLock<ReaderLabel>,
}

/// One packet in this many has its fan-out timed: enough for percentiles, no cost to speak of.
const FANOUT_SAMPLE: u64 = 64;

impl Hub {
    pub fn new(path: &str, tracks: Vec<Track>, queue_size: usize) -> Arc<Self> {
        Arc::new(Hub {
            path: path.to_string(),
            tracks: RwLock::new(tracks),
            inner: Mutex::new(HubInner {
                readers: Vec::new(),
                gop: GopCache::default(),
                next_reader_id: 1,
                ts: Vec::new(),
            }),
            queue_size: queue_size.max(1),
            closed: AtomicBool::new(false),
            closed_tx: watch::channel(false).0,
            stats: HubStats::default(),
            keyframe_request: watch::channel(0).0,
            telemetry: std::sync::OnceLock::new(),
            created: std::time::SystemTime::now(),
            source: std::sync::OnceLock::new(),
        })
    }

    /// Who feeds this stream, for the control API (`rtspSession`, `webRTCSession`, `rtspSource`).
    pub fn set_source_label(&self, kind: &'static str, id: String) {
        let _ = self.source.set(ReaderLabel { kind, id });
    }

    pub fn source_label(&self) -> Option<ReaderLabel> {
        self.source.get().cloned()
    }

    /// Where fan-out timings go.
    pub fn set_telemetry(&self, t: Arc<crate::stats::Telemetry>) {
        let _ = self.telemetry.set(t);
    }

    /// When the stream started.
    pub fn created(&self) -> std::time::SystemTime {
        self.created
    }

    /// Who reads this stream now.
    pub fn readers(&self) -> Vec<ReaderLabel> {
        self.lock()
            .readers
            .iter()
            .map(|r| r.label.clone())
            .collect()
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tracks(&self) -> Vec<Track> {
        self.tracks.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Replaces a track's description (e.g. SPS/PPS learned in-band).
    pub fn update_track(&self, index: usize, track: Track) {
        if let Ok(mut tracks) = self.tracks.write() {
            if let Some(slot) = tracks.get_mut(index) {
                *slot = track;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubInner> {
        // A panic while holding the lock cannot leave the reader list inconsistent
        // (every mutation is a single push/retain), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands one unit to every reader. Never blocks on a reader.
    pub fn write(&self, mut unit: Unit) {
        let (video, clock_rate) = self.track_info(unit.track);
        let n = self.stats.packets_in.fetch_add(1, Ordering::Relaxed);
        let timed = n
            .is_multiple_of(FANOUT_SAMPLE)
            .then(|| self.telemetry.get().map(|t| (t, std::time::Instant::now())))
            .flatten();
        let len = unit.size() as u64;
        self.stats.bytes_in.fetch_add(len, Ordering::Relaxed);
        let mut inner = self.lock();
        let offset = inner.rebase(unit.track, unit.pts, clock_rate);
        unit.pts += offset;
        unit.dts += offset;
        let pkt = Arc::new(unit);
        let released = if video {
            inner.gop.push(&pkt)
        } else {
            Default::default()
        };
        let mut sent = 0u64;
        let mut dropped = 0u64;
        for reader in inner.readers.iter_mut() {
            if video && reader.wait != Wait::No {
                if !pkt.starts_keyframe() {
                    if reader.wait == Wait::Overflow {
                        dropped += 1;
                        reader.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                reader.wait = Wait::No;
            }
            match reader.tx.try_send(pkt.clone()) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped += 1;
                    reader.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    if video {
                        reader.wait = Wait::Overflow;
                    }
                }
                // The reader is going away; its handle removes the slot.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        drop(inner);
        drop(released);
        if let Some((t, started)) = timed {
            t.latencies
                .record(crate::stats::op::HUB_FANOUT, started.elapsed(), true);
        }
        self.stats.packets_out.fetch_add(sent, Ordering::Relaxed);
        self.stats
            .bytes_out
            .fetch_add(sent * len, Ordering::Relaxed);
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    fn track_info(&self, index: u8) -> (bool, u32) {
        self.tracks
            .read()
            .ok()
            .and_then(|t| t.get(index as usize).map(|t| (t.is_video(), t.clock_rate)))
            .unwrap_or((false, 90_000))
    }

    /// The source restarted (a pulled camera reconnected): the cached GOP is stale, readers
    /// resume at the next keyframe, and timestamps continue from where they were.
    pub fn discontinuity(&self) {
        let mut inner = self.lock();
        let released = inner.gop.clear();
        for r in inner.readers.iter_mut() {
            r.wait = Wait::Join;
        }
        for t in inner.ts.iter_mut() {
            t.rebase = true;
        }
        drop(inner);
        drop(released);
    }

    /// Adds a reader. It first gets the cached GOP (so it starts on a keyframe), then live packets.
    pub fn add_reader(self: &Arc<Self>) -> Result<Reader, HubClosed> {
        self.add_reader_as("internal", String::new())
    }

    /// Adds a reader that the control API lists as `kind` `id`.
    pub fn add_reader_as(
        self: &Arc<Self>,
        kind: &'static str,
        label_id: String,
    ) -> Result<Reader, HubClosed> {
        if self.closed.load(Ordering::Acquire) {
            return Err(HubClosed);
        }
        let (tx, rx) = mpsc::channel(self.queue_size);
        let counters = Arc::new(ReaderCounters::default());
        let mut inner = self.lock();
        // Checked again under the lock: close() empties the list under the same lock.
        if self.closed.load(Ordering::Acquire) {
            return Err(HubClosed);
        }
        let id = inner.next_reader_id;
        inner.next_reader_id += 1;
        let gop = inner.gop.snapshot();
        let has_video = self
            .tracks
            .read()
            .map(|t| t.iter().any(Track::is_video))
            .unwrap_or(false);
        inner.readers.push(ReaderSlot {
            id,
            tx,
            // Without a cached keyframe the reader must not start mid-GOP.
            wait: if has_video && gop.is_empty() {
                Wait::Join
            } else {
                Wait::No
            },
            counters: Arc::clone(&counters),
            label: ReaderLabel { kind, id: label_id },
        });
        drop(inner);
        if has_video {
            self.request_keyframe();
        }
        Ok(Reader {
            id,
            hub: Arc::clone(self),
            rx,
            gop,
            counters,
        })
    }

    fn remove_reader(&self, id: u64) {
        self.lock().readers.retain(|r| r.id != id);
    }

    pub fn reader_count(&self) -> usize {
        self.lock().readers.len()
    }

    /// Ends the stream: every reader's queue closes, new readers are refused.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let readers = std::mem::take(&mut self.lock().readers);
        drop(readers);
        self.closed_tx.send_replace(true);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves when the hub is closed.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed_tx.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Asks the source for a keyframe. The source rate-limits.
    pub fn request_keyframe(&self) {
        self.keyframe_request
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The source watches this to forward keyframe requests upstream.
    pub fn keyframe_requests(&self) -> watch::Receiver<u64> {
        self.keyframe_request.subscribe()
    }
}

impl HubInner {
    /// What to add to the track's timestamps from `ts` on.
    fn rebase(&mut self, track: u8, ts: i64, clock_rate: u32) -> i64 {
        let i = track as usize;
        if self.ts.len() <= i {
            self.ts.resize(i + 1, TsState::default());
        }
        let st = &mut self.ts[i];
        let now = std::time::Instant::now();
        if st.rebase {
            st.rebase = false;
            if let Some((last, at)) = st.last {
                // Continue as if the source had never stopped: last + the time that passed.
                let elapsed = now.duration_since(at).as_secs_f64() * f64::from(clock_rate);
                st.offset = last + elapsed as i64 - ts;
            }
        }
        st.last = Some((ts + st.offset, now));
        st.offset
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the stream has ended")]
pub struct HubClosed;

/// A reader's end of the hub. Dropping it leaves the hub.
pub struct Reader {
    id: u64,
    hub: Arc<Hub>,
    rx: mpsc::Receiver<Packet>,
    /// The GOP cached when the reader joined; send these before `recv`.
    pub gop: GopSnapshot,
    counters: Arc<ReaderCounters>,
}

impl Reader {
    /// The next live packet; None once the stream has ended.
    pub async fn recv(&mut self) -> Option<Packet> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Packet> {
        self.rx.try_recv().ok()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.hub.remove_reader(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::frame::{Packetizer, RtpPayload};
    use crate::codec::h264::ParamSets;
    use crate::stream::unit::Payloads;
    use bytes::Bytes;

    fn pkt(track: u8, ts: u32, au_start: bool, keyframe: bool) -> Unit {
        let one = Payloads::One(RtpPayload {
            payload: Bytes::from_static(&[0x65, 1, 2, 3]),
            marker: true,
        });
        Unit::received(
            track,
            i64::from(ts),
            keyframe,
            au_start,
            one,
            None,
            Packetizer::H264,
        )
    }

    fn hub() -> Arc<Hub> {
        Hub::new(
            "cam",
            vec![Track::h264(ParamSets::default()), Track::opus(2)],
            4,
        )
    }

    #[tokio::test]
    async fn new_reader_gets_gop_then_live() {
        let hub = hub();
        hub.write(pkt(0, 1, true, false)); // before any keyframe: not cached
        hub.write(pkt(0, 2, true, true));
        hub.write(pkt(0, 3, true, false));
        let mut r = hub.add_reader().expect("open hub");
        let ts: Vec<u32> = r.gop.iter().map(|p| p.rtp_timestamp()).collect();
        assert_eq!(ts, vec![2, 3]);
        hub.write(pkt(0, 4, true, false));
        assert_eq!(r.recv().await.map(|p| p.rtp_timestamp()), Some(4));
    }

    #[tokio::test]
    async fn reader_without_cache_waits_for_keyframe() {
        let hub = hub();
        let mut r = hub.add_reader().expect("open hub");
        hub.write(pkt(0, 1, true, false));
        hub.write(pkt(1, 1, true, false)); // audio is not held back
        hub.write(pkt(0, 2, true, true));
        assert_eq!(
            r.recv().await.map(|p| (p.track, p.rtp_timestamp())),
            Some((1, 1))
        );
        assert_eq!(
            r.recv().await.map(|p| (p.track, p.rtp_timestamp())),
            Some((0, 2))
        );
    }

    #[tokio::test]
    async fn slow_reader_drops_to_next_keyframe_and_others_unaffected() {
        let hub = hub();
        hub.write(pkt(0, 0, true, true));
        let slow = hub.add_reader().expect("open hub");
        let mut fast = hub.add_reader().expect("open hub");
        for ts in 1..=10 {
            hub.write(pkt(0, ts, true, false));
            assert_eq!(fast.recv().await.map(|p| p.rtp_timestamp()), Some(ts));
        }
        assert_eq!(slow.dropped(), 6, "queue of 4, 10 packets");
        assert_eq!(hub.stats.dropped.load(Ordering::Relaxed), 6);
        let mut slow = slow;
        for ts in 1..=4 {
            assert_eq!(slow.recv().await.map(|p| p.rtp_timestamp()), Some(ts));
        }
        hub.write(pkt(0, 11, true, false)); // skipped: waiting for a keyframe
        hub.write(pkt(0, 12, true, true));
        assert_eq!(slow.recv().await.map(|p| p.rtp_timestamp()), Some(12));
    }

    #[tokio::test]
    async fn discontinuity_rebases_timestamps_and_waits_for_keyframe() {
        let hub = hub();
        hub.write(pkt(0, 1000, true, true));
        let mut r = hub.add_reader().expect("open hub");
        assert_eq!(r.gop.len(), 1);
        hub.discontinuity();
        // The reconnected source starts from an unrelated timestamp, mid-GOP.
        hub.write(pkt(0, 7_000_000, true, false));
        hub.write(pkt(0, 7_003_000, true, true));
        let p = r.recv().await.expect("keyframe after reconnect");
        assert!(p.keyframe);
        let delta = p.rtp_timestamp().wrapping_sub(1000);
        assert!(
            delta < 90_000,
            "timestamp continued from 1000, got {}",
            p.rtp_timestamp()
        );
        assert!(hub.add_reader().expect("open").gop.len() == 1);
    }

    #[tokio::test]
    async fn close_ends_readers_and_refuses_new_ones() {
        let hub = hub();
        let mut r = hub.add_reader().expect("open hub");
        assert_eq!(hub.reader_count(), 1);
        hub.close();
        assert!(r.recv().await.is_none());
        assert!(hub.add_reader().is_err());
        drop(r);
        assert_eq!(hub.reader_count(), 0);
    }

    #[tokio::test]
    async fn dropping_reader_leaves_hub() {
        let hub = hub();
        let r = hub.add_reader().expect("open hub");
        let r2 = hub.add_reader().expect("open hub");
        drop(r);
        assert_eq!(hub.reader_count(), 1);
        drop(r2);
        assert_eq!(hub.reader_count(), 0);
    }
}
