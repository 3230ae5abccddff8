//! The stream core of a path: one source in, any number of readers out. What a source
//! hands in (`ingest`) is made ready once for every reader, fanned out by the hub with a
//! bounded queue per reader, and the packets since the last keyframe are kept so a new
//! reader starts at once (`gop`).

pub mod gop;
pub mod hub;
pub mod ingest;

pub use hub::{Codec, Hub, HubClosed, Packet, Reader, Track};
