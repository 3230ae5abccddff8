//! The GOP cache of a path: video units since the last keyframe, so a new reader starts
//! decoding at once instead of waiting for the next keyframe.
//!
//! Packets are kept in sealed chunks shared by reference count, plus one open chunk. A
//! joining reader's snapshot is taken under the hub lock, so it must not cost one clone
//! per packet: it clones one `Arc` per chunk and at most a chunk's worth of packets.

use std::sync::Arc;

use super::hub::Packet;

/// Upper bound on the cache: a camera with a 10 s GOP at 8 Mbit/s would otherwise pin
/// 10 MB per path. Past it, new readers wait for the next keyframe (or a PLI for WHIP).
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// And on its packets: a stream of 1-byte packets must not pin millions of entries. Each is
/// also charged what it costs besides its payload.
pub const MAX_PACKETS: usize = 16 * 1024;
const PACKET_OVERHEAD: usize = std::mem::size_of::<super::unit::Unit>() + 32;
/// Packets per sealed chunk.
const CHUNK: usize = 64;

#[derive(Default)]
pub struct GopCache {
    sealed: Vec<Arc<[Packet]>>,
    open: Vec<Packet>,
    packets: usize,
    bytes: usize,
    /// False after an overflow until the next keyframe: a partial GOP is useless.
    valid: bool,
}

/// What the cache held when a reader joined.
#[derive(Default, Clone)]
pub struct GopSnapshot {
    sealed: Vec<Arc<[Packet]>>,
    open: Vec<Packet>,
}

/// What the cache let go of: dropped by the caller once the hub lock is released, so the
/// writer does not free a whole GOP's buffers while readers wait for the lock.
#[derive(Default)]
pub struct Released {
    _sealed: Vec<Arc<[Packet]>>,
}

impl GopCache {
    /// Adds a video packet; a keyframe start replaces the cache.
    pub fn push(&mut self, pkt: &Packet) -> Released {
        let mut released = Released::default();
        if pkt.starts_keyframe() {
            released = self.clear();
            self.valid = true;
        }
        if !self.valid {
            return released;
        }
        let cost = pkt.size() + PACKET_OVERHEAD;
        if self.bytes + cost > MAX_BYTES || self.packets >= MAX_PACKETS {
            return self.clear();
        }
        self.bytes += cost;
        self.packets += 1;
        if self.open.capacity() == 0 {
            self.open.reserve_exact(CHUNK);
        }
        self.open.push(pkt.clone());
        if self.open.len() == CHUNK {
            // Copied (refcounts only) so the open chunk keeps its capacity: one allocation
            // per sealed chunk, none per packet.
            self.sealed.push(Arc::from(&self.open[..]));
            self.open.clear();
        }
        released
    }

    /// Empties the cache until the next keyframe. The open chunk (under a chunk of
    /// packets) is emptied in place to keep its capacity; the sealed ones go to the caller.
    pub fn clear(&mut self) -> Released {
        self.packets = 0;
        self.bytes = 0;
        self.valid = false;
        self.open.clear();
        Released {
            _sealed: std::mem::take(&mut self.sealed),
        }
    }

    /// The cached GOP, empty if there is no complete one.
    pub fn snapshot(&self) -> GopSnapshot {
        if !self.valid {
            return GopSnapshot::default();
        }
        GopSnapshot {
            sealed: self.sealed.clone(),
            open: self.open.clone(),
        }
    }
}

type ChunkIter<'a> = std::iter::FlatMap<
    std::slice::Iter<'a, Arc<[Packet]>>,
    &'a [Packet],
    fn(&'a Arc<[Packet]>) -> &'a [Packet],
>;

impl GopSnapshot {
    pub fn iter(&self) -> std::iter::Chain<ChunkIter<'_>, std::slice::Iter<'_, Packet>> {
        let chunk: fn(&Arc<[Packet]>) -> &[Packet] = |c| c;
        self.sealed.iter().flat_map(chunk).chain(self.open.iter())
    }

    pub fn len(&self) -> usize {
        self.sealed.iter().map(|c| c.len()).sum::<usize>() + self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    pub fn first(&self) -> Option<&Packet> {
        self.iter().next()
    }
}

impl<'a> IntoIterator for &'a GopSnapshot {
    type Item = &'a Packet;
    type IntoIter = std::iter::Chain<ChunkIter<'a>, std::slice::Iter<'a, Packet>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::frame::{Frame, Packetizer};
    use crate::stream::unit::Unit;
    use bytes::Bytes;

    fn pkt(ts: u32, keyframe: bool, len: usize) -> Packet {
        let frame = Frame::Nals(vec![Bytes::from(vec![0x41; len])]);
        Arc::new(Unit::frame(
            0,
            i64::from(ts),
            keyframe,
            frame,
            Packetizer::H264,
        ))
    }

    #[test]
    fn snapshot_keeps_order_across_chunks() {
        let mut gop = GopCache::default();
        gop.push(&pkt(0, false, 10)); // before a keyframe: not kept
        for ts in 1..=(3 * CHUNK as u32 + 5) {
            gop.push(&pkt(ts, ts == 1, 10));
        }
        let snap = gop.snapshot();
        assert_eq!(snap.len(), 3 * CHUNK + 5);
        let ts: Vec<u32> = snap.iter().map(|p| p.rtp_timestamp()).collect();
        assert_eq!(ts, (1..=(3 * CHUNK as u32 + 5)).collect::<Vec<_>>());
        assert!(snap.first().is_some_and(|p| p.keyframe));
        // The snapshot outlives a new keyframe.
        gop.push(&pkt(1000, true, 10));
        assert_eq!(snap.len(), 3 * CHUNK + 5);
        assert_eq!(gop.snapshot().len(), 1);
    }

    #[test]
    fn overflow_by_items_or_bytes_invalidates_until_keyframe() {
        let mut gop = GopCache::default();
        for ts in 0..=MAX_PACKETS as u32 {
            gop.push(&pkt(ts, ts == 0, 1));
        }
        assert!(gop.snapshot().is_empty(), "past MAX_PACKETS");
        gop.push(&pkt(1, false, 1));
        assert!(gop.snapshot().is_empty(), "still waiting for a keyframe");
        gop.push(&pkt(2, true, MAX_BYTES / 2));
        gop.push(&pkt(3, false, MAX_BYTES / 2));
        assert!(gop.snapshot().is_empty(), "past MAX_BYTES");
        gop.push(&pkt(4, true, 100));
        assert_eq!(gop.snapshot().len(), 1);
    }
}
