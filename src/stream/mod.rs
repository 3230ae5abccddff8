//! The stream core of a path: one source in, any number of readers out. What a source
//! hands in becomes units (`ingest`, `unit`) with their timestamps; the hub fans them out
//! with a bounded queue per reader, and the units since the last keyframe are kept so a
//! new reader starts at once (`gop`). Each kind of reader takes the RTP it needs from the
//! unit, made once per path.

pub mod gop;
pub mod hub;
pub mod ingest;
pub mod passthrough;
pub mod unit;

pub use hub::{Codec, Hub, HubClosed, Packet, Reader, Track};
pub use unit::{RtpFormat, Unit};
