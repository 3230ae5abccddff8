//! Codec handling shared by every protocol.

pub mod h264;
pub mod passthrough;
pub mod rtcp;
pub mod rtp;
