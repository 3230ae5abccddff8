//! RTSP: wire format, publishers (ANNOUNCE/RECORD) and readers (DESCRIBE/PLAY).

pub mod conn;
pub mod limits;
pub mod message;
pub mod play;
pub mod server;
pub mod transport;
pub mod url;
