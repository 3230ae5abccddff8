//! The WebRTC engine: one UDP port for every session, mDNS off, no NACK, SRTP profiles in
//! our order of preference. Each session gets its own `API` because its codec list is cut to
//! what that offer and that stream agree on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use webrtc::api::interceptor_registry::configure_rtcp_reports;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMux, UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::RTCPFeedback;

use super::dtls_sniff::{SniffingConn, SrtpObserver};
use crate::config::{Config, SrtpProfile};

pub struct Engine {
    mux: Arc<UDPMuxDefault>,
    local_addr: SocketAddr,
    pub srtp: Arc<SrtpObserver>,
}

/// Codecs one session may use: the payload types and fmtp lines are the offer's, so that
/// the `webrtc` matcher picks exactly them.
pub struct SessionCodecs {
    pub video: Option<RTCRtpCodecCapability>,
    pub video_pt: u8,
    pub audio: Option<RTCRtpCodecCapability>,
    pub audio_pt: u8,
}

impl SessionCodecs {
    /// The offer's H.264 payload type and fmtp, with keyframe requests (no NACK).
    pub fn set_video(&mut self, c: &super::sdp::OfferCodec) {
        self.video = Some(RTCRtpCodecCapability {
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: c.fmtp.clone(),
            rtcp_feedback: keyframe_feedback(),
        });
        self.video_pt = c.payload_type;
    }

    /// The offer's Opus payload type and fmtp.
    pub fn set_audio(&mut self, c: &super::sdp::OfferCodec) {
        self.audio = Some(RTCRtpCodecCapability {
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: c.fmtp.clone(),
            rtcp_feedback: vec![],
        });
        self.audio_pt = c.payload_type;
    }
}

pub fn keyframe_feedback() -> Vec<RTCPFeedback> {
    vec![
        RTCPFeedback {
            typ: "nack".into(),
            parameter: "pli".into(),
        },
        RTCPFeedback {
            typ: "ccm".into(),
            parameter: "fir".into(),
        },
    ]
}

impl Engine {
    pub async fn bind(config: &Config) -> anyhow::Result<Engine> {
        let addr = config.webrtc_local_udp_address;
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("webrtcLocalUDPAddress: cannot bind UDP {addr}: {e}"))?;
        let local_addr = socket.local_addr()?;
        let srtp = Arc::new(SrtpObserver::default());
        let conn = SniffingConn::new(Arc::new(socket), Arc::clone(&srtp));
        let mux = UDPMuxDefault::new(UDPMuxParams::new(conn));
        Ok(Engine {
            mux,
            local_addr,
            srtp,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn setting_engine(&self, profiles: &[SrtpProfile]) -> SettingEngine {
        let mut s = SettingEngine::default();
        s.set_udp_network(UDPNetwork::Muxed(
            Arc::clone(&self.mux) as Arc<dyn UDPMux + Send + Sync>
        ));
        s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        s.set_srtp_protection_profiles(profiles.iter().map(|p| p.to_dtls()).collect());
        let ip = self.local_addr.ip();
        s.set_network_types(if ip.is_ipv6() {
            vec![NetworkType::Udp6]
        } else {
            vec![NetworkType::Udp4]
        });
        if !ip.is_unspecified() {
            // Bound to one address: announce only that one.
            s.set_include_loopback_candidate(ip.is_loopback());
            s.set_ip_filter(Box::new(move |candidate: IpAddr| candidate == ip));
        }
        s
    }

    /// A fresh API restricted to one session's codecs.
    pub fn api(
        &self,
        codecs: &SessionCodecs,
        srtp_profiles: &[SrtpProfile],
    ) -> webrtc::error::Result<API> {
        let mut m = MediaEngine::default();
        if let Some(video) = &codecs.video {
            m.register_codec(
                RTCRtpCodecParameters {
                    capability: video.clone(),
                    payload_type: codecs.video_pt,
                    ..Default::default()
                },
                RTPCodecType::Video,
            )?;
        }
        if let Some(audio) = &codecs.audio {
            m.register_codec(
                RTCRtpCodecParameters {
                    capability: audio.clone(),
                    payload_type: codecs.audio_pt,
                    ..Default::default()
                },
                RTPCodecType::Audio,
            )?;
        }
        // Sender and receiver reports only: no NACK (no retransmission buffers per viewer)
        // and no TWCC.
        let registry = configure_rtcp_reports(Registry::new());
        Ok(APIBuilder::new()
            .with_media_engine(m)
            .with_setting_engine(self.setting_engine(srtp_profiles))
            .with_interceptor_registry(registry)
            .build())
    }
}
