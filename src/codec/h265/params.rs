//! VPS, SPS and PPS: from the SDP (`sprop-vps`, `sprop-sps`, `sprop-pps`, RFC 7798 7.1),
//! in band, and the profile, tier and level they give an SDP answer.

use base64::Engine as _;
use bytes::Bytes;

use super::nal_type;
use crate::codec::nal::{nal_to_rbsp, NalError, SPROP_BASE64};

/// VPS, SPS and PPS of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamSets {
    pub vps: Option<Bytes>,
    pub sps: Option<Bytes>,
    pub pps: Option<Bytes>,
}

/// The fmtp keys of the three parameter sets, in decoding order.
const SPROP_KEYS: [(&str, u8); 3] = [
    ("sprop-vps", nal_type::VPS),
    ("sprop-sps", nal_type::SPS),
    ("sprop-pps", nal_type::PPS),
];

/// Profile, tier and level, as an SDP's fmtp says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTierLevel {
    pub profile_id: u8,
    pub tier_flag: u8,
    pub level_id: u8,
}

impl ParamSets {
    /// From an SDP's fmtp: `fmtp(key)` gives a parameter's value. Each value is a
    /// comma-separated list of base64 NAL units; the first of the right type wins.
    pub fn from_fmtp<'a>(fmtp: impl Fn(&str) -> Option<&'a str>) -> Result<ParamSets, NalError> {
        let mut params = ParamSets::default();
        for (key, want) in SPROP_KEYS {
            let Some(value) = fmtp(key) else { continue };
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let nal = SPROP_BASE64
                    .decode(item)
                    .map_err(|e| NalError::BadSprop(format!("{key} {item:?}: {e}")))?;
                if nal.len() < 3 || super::nal_type_of(nal[0]) != want {
                    return Err(NalError::BadSprop(format!(
                        "{key} {item:?} is not a {} NAL unit",
                        key[6..].to_uppercase()
                    )));
                }
                let slot = match want {
                    nal_type::VPS => &mut params.vps,
                    nal_type::SPS => &mut params.sps,
                    _ => &mut params.pps,
                };
                slot.get_or_insert_with(|| Bytes::from(nal));
            }
        }
        Ok(params)
    }

    /// The fmtp parameters of the known sets, for an SDP we write.
    pub fn to_fmtp(&self) -> Vec<(String, String)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        SPROP_KEYS
            .iter()
            .zip([&self.vps, &self.sps, &self.pps])
            .filter_map(|((key, _), nal)| Some((key.to_string(), b64.encode(nal.as_ref()?))))
            .collect()
    }

    /// From the SPS's profile_tier_level (H.265 7.3.3): the general profile, tier and level.
    pub fn profile_tier_level(&self) -> Option<ProfileTierLevel> {
        // After the 2-byte NAL header: 1 byte of VPS id, sub-layer count and nesting flag,
        // 1 byte of profile space, tier and profile, 4 of compatibility flags, 6 of
        // constraint flags, then the level.
        let sps = self.sps.as_ref()?;
        let rbsp = nal_to_rbsp(&sps[..sps.len().min(40)]);
        let ptl = rbsp.get(3)?;
        Some(ProfileTierLevel {
            profile_id: ptl & 0x1F,
            tier_flag: (ptl >> 5) & 1,
            level_id: *rbsp.get(14)?,
        })
    }
}
