//! RTSP: wire format, publisher sessions (ANNOUNCE/RECORD).

pub mod conn;
pub mod message;
pub mod sdp;
pub mod server;
pub mod transport;
