//! RTP and RTCP as they arrive from any peer: parsed with every length checked.

pub mod rtcp;
pub mod rtp;
