//! G.711 (ITU-T G.711, RFC 3551 4.5.14): µ-law (PCMU) and A-law (PCMA), 8 kHz mono. Each
//! RTP packet is a frame of samples, so it passes through as it is; browsers and RTSP
//! readers take it with its static payload type.

/// The sampling rate and RTP clock of G.711.
pub const CLOCK_RATE: u32 = 8000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, PCMU, static payload type 0.
    Mu,
    /// A-law, PCMA, static payload type 8.
    A,
}

impl Law {
    /// From an rtpmap encoding name (upper case).
    pub fn from_encoding(name: &str) -> Option<Law> {
        match name {
            "PCMU" => Some(Law::Mu),
            "PCMA" => Some(Law::A),
            _ => None,
        }
    }

    pub fn encoding(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Law::Mu => "G.711 µ-law",
            Law::A => "G.711 A-law",
        }
    }

    pub fn static_payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }
}
