//! Codecs: one folder each, with what every protocol needs of them.

pub mod h264;
pub mod sdp;
