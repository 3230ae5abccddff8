//! Protocol rooms: each serves one protocol on top of the stream core, and none imports
//! another.

pub mod rtsp;
pub mod webrtc;
