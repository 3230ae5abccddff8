//! RFC 3640 (`MPEG4-GENERIC`, AAC-hbr and AAC-lbr): AU headers, then the access units.
//! Several AUs may share a packet; one too large for a packet is fragmented across packets
//! that each carry its full size, the last with the marker bit.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Mpeg4AudioError, MAX_AU_SIZE};
use crate::codec::bits::BitReader;
use crate::codec::frame::RtpPayload;

/// The AU header fields read (the fmtp's sizelength, indexlength, indexdeltalength).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuHeaders {
    pub size_length: u8,
    pub index_length: u8,
    pub index_delta_length: u8,
}

/// Access units out of RTP payloads.
#[derive(Debug)]
pub struct Depacketizer {
    headers: AuHeaders,
    /// A fragmented AU being collected, and its announced size.
    fragment: BytesMut,
    fragment_size: Option<usize>,
}

impl Depacketizer {
    pub fn new(headers: AuHeaders) -> Self {
        Depacketizer {
            headers,
            fragment: BytesMut::new(),
            fragment_size: None,
        }
    }

    /// Forgets a fragmented AU (after loss).
    pub fn reset(&mut self) {
        self.fragment.clear();
        self.fragment_size = None;
    }

    /// The complete AUs of one packet go to `out`, in order. On error nothing is added.
    pub fn push(
        &mut self,
        payload: &Bytes,
        marker: bool,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Mpeg4AudioError> {
        let result = self.read(payload, marker, out);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn read(
        &mut self,
        payload: &Bytes,
        marker: bool,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Mpeg4AudioError> {
        let short = |need| Mpeg4AudioError::ShortPayload {
            len: payload.len(),
            need,
        };
        let header_bits = usize::from(u16::from_be_bytes([
            *payload.first().ok_or(short(2))?,
            *payload.get(1).ok_or(short(2))?,
        ]));
        let data_at = 2 + header_bits.div_ceil(8);
        let data = payload.get(data_at..).ok_or(short(data_at))?;
        let mut r = BitReader::new(&payload[2..data_at]);
        let h = self.headers;
        let mut sizes = [0usize; 64];
        let mut count = 0;
        let mut used = 0;
        while used < header_bits && count < sizes.len() {
            let index_bits = if count == 0 {
                h.index_length
            } else {
                h.index_delta_length
            };
            let need = usize::from(h.size_length + index_bits);
            if used + need > header_bits {
                break;
            }
            sizes[count] = r.bits(u32::from(h.size_length)).ok_or(short(data_at))? as usize;
            // Interleaving (an index other than 0 and deltas other than 0) is not used by
            // live sources; AUs are taken in the order they come.
            r.bits(u32::from(index_bits)).ok_or(short(data_at))?;
            used += need;
            count += 1;
        }
        let sizes = &sizes[..count];

        if let Some(want) = self.fragment_size {
            // A continuation repeats the full AU's size in its one header.
            if sizes != [want] {
                self.reset();
                return self.read(payload, marker, out);
            }
            return self.continue_fragment(want, data, marker, out);
        }
        if let [size] = sizes {
            if *size > data.len() {
                if *size > MAX_AU_SIZE {
                    return Err(Mpeg4AudioError::TooLarge(*size));
                }
                if marker {
                    return Err(Mpeg4AudioError::SizesPastEnd {
                        sizes: *size,
                        data: data.len(),
                    });
                }
                self.fragment_size = Some(*size);
                self.fragment.extend_from_slice(data);
                return Ok(());
            }
        }
        let total: usize = sizes.iter().sum();
        if total > data.len() {
            return Err(Mpeg4AudioError::SizesPastEnd {
                sizes: total,
                data: data.len(),
            });
        }
        let mut at = data_at;
        for &size in sizes {
            if size > 0 {
                out.push(payload.slice(at..at + size));
            }
            at += size;
        }
        Ok(())
    }

    fn continue_fragment(
        &mut self,
        want: usize,
        data: &[u8],
        marker: bool,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Mpeg4AudioError> {
        let have = self.fragment.len() + data.len();
        if have > want || (marker && have != want) {
            return Err(Mpeg4AudioError::FragmentMismatch { have, want });
        }
        self.fragment.extend_from_slice(data);
        if have == want {
            self.fragment_size = None;
            out.push(self.fragment.split().freeze());
        }
        Ok(())
    }
}

/// One AU as RTP payloads of at most `max_payload` bytes: one AU header (index 0), then
/// the AU, cut into fragments if it does not fit.
pub fn packetize(au: &Bytes, headers: AuHeaders, max_payload: usize, out: &mut Vec<RtpPayload>) {
    let bits = u32::from(headers.size_length) + u32::from(headers.index_length);
    let header_bytes = (bits as usize).div_ceil(8);
    let chunk = max_payload.saturating_sub(2 + header_bytes).max(1);
    // The size field holds the AU's size; sizes the field cannot hold were never read in.
    let field = (au.len() as u64) << headers.index_length << (header_bytes * 8 - bits as usize);
    let parts = au.chunks(chunk);
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.enumerate() {
        let mut p = BytesMut::with_capacity(2 + header_bytes + part.len());
        p.put_u16(bits as u16);
        for b in (0..header_bytes).rev() {
            p.put_u8((field >> (b * 8)) as u8);
        }
        p.extend_from_slice(part);
        out.push(RtpPayload {
            payload: p.freeze(),
            marker: i == last,
        });
    }
}
