//! Video passed through packet by packet (VP8, VP9, AV1 from browsers): each packet goes to
//! readers as it came, marked with where its frame starts and whether that frame is a key
//! frame, so joining and lagging readers can start on one.

use crate::codec::{FrameError, KeyframeDetector};

/// What one packet is, for the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// First packet of a frame.
    pub au_start: bool,
    /// Belongs to a key frame.
    pub keyframe: bool,
    /// Packets were lost just before this one: the source should be asked for a key frame.
    pub loss: bool,
}

pub struct FramePassthrough {
    starts_keyframe: KeyframeDetector,
    last_seq: Option<u16>,
    last_ts: Option<u32>,
    /// The next packet starts a frame.
    at_start: bool,
    keyframe: bool,
}

impl FramePassthrough {
    pub fn new(starts_keyframe: KeyframeDetector) -> Self {
        FramePassthrough {
            starts_keyframe,
            last_seq: None,
            last_ts: None,
            at_start: true,
            keyframe: false,
        }
    }

    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<Marks, FrameError> {
        let loss = self.last_seq.is_some_and(|last| {
            let d = seq.wrapping_sub(last);
            d != 1 && d < 0x8000
        });
        self.last_seq = Some(seq);
        // A lost marker: the timestamp change still ends the previous frame.
        if self.last_ts.is_some_and(|t| t != timestamp) {
            self.at_start = true;
        }
        self.last_ts = Some(timestamp);
        let au_start = std::mem::replace(&mut self.at_start, marker);
        // Every packet's descriptor is read, so a broken one is refused wherever it is.
        let starts_keyframe = match payload {
            [] => Err(FrameError::Empty),
            p => (self.starts_keyframe)(p),
        };
        if au_start {
            // An unreadable first packet leaves the frame undecodable: not a key frame.
            self.keyframe = *starts_keyframe.as_ref().unwrap_or(&false);
        }
        starts_keyframe?;
        Ok(Marks {
            au_start,
            keyframe: self.keyframe,
            loss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::vp8;

    fn vp8() -> FramePassthrough {
        FramePassthrough::new(|p| Ok(vp8::starts_keyframe(p)?))
    }

    #[test]
    fn frames_are_marked_from_their_first_packet() {
        let mut p = vp8();
        let key_start = [0x10, 0x10, 1];
        let cont = [0x00, 0x33];
        let delta_start = [0x10, 0x11, 1];
        let marks: Vec<(bool, bool)> = [
            (1, 0, false, &key_start[..]),
            (2, 0, true, &cont[..]),
            (3, 3000, true, &delta_start[..]),
            // A lost marker on 4: the new timestamp on 5 still starts a frame.
            (4, 6000, false, &delta_start[..]),
            (5, 9000, true, &key_start[..]),
        ]
        .into_iter()
        .map(|(seq, ts, m, pl)| {
            let k = p.push(seq, ts, m, pl).expect("readable");
            (k.au_start, k.keyframe)
        })
        .collect();
        assert_eq!(
            marks,
            vec![
                (true, true),
                (false, true),
                (true, false),
                (true, false),
                (true, true)
            ]
        );
    }

    #[test]
    fn loss_is_reported_and_unreadable_starts_are_errors() {
        let mut p = vp8();
        assert!(!p.push(10, 0, true, &[0x10, 0x10]).expect("ok").loss);
        assert!(p.push(13, 3000, true, &[0x10, 0x11]).expect("ok").loss);
        assert!(p.push(14, 6000, true, &[0x90]).is_err());
        assert_eq!(p.push(15, 6000, false, &[]), Err(FrameError::Empty));
        // The next frame is read afresh.
        let m = p.push(16, 9000, true, &[0x10, 0x10]).expect("ok");
        assert!(m.au_start && m.keyframe && !m.loss);
    }
}
