//! The first fields of a slice header (H.264 7.3.3): enough to tell a B slice, which
//! means the stream reorders frames (its decode order differs from its display order).

use super::params::BitReader;

/// slice_type values (H.264 table 7-6), modulo 5.
const B: u64 = 1;

/// Whether a coded slice NAL unit (type 1 or 5) is a B slice. Reads the first bytes only,
/// without allocating.
pub fn is_b_slice(nal: &[u8]) -> bool {
    // first_mb_in_slice and slice_type fit in the first few bytes; remove emulation
    // prevention from those only.
    let mut rbsp = [0u8; 16];
    let mut len = 0;
    let mut zeros = 0;
    for &byte in nal.iter().skip(1) {
        if len == rbsp.len() {
            break;
        }
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp[len] = byte;
        len += 1;
    }
    let mut r = BitReader::new(&rbsp[..len]);
    let slice_type = r.ue().and_then(|_first_mb| r.ue());
    slice_type.is_some_and(|t| t % 5 == B)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_types_are_read() {
        // first_mb_in_slice = 0 ("1"), slice_type 1 = B ("010"), then padding.
        assert!(is_b_slice(&[0x01, 0b1010_0000]));
        // slice_type 6 (B, all slices of the picture) = "00111".
        assert!(is_b_slice(&[0x01, 0b1001_1100]));
        // slice_type 0 = P ("1"), 2 = I ("011").
        assert!(!is_b_slice(&[0x41, 0b1100_0000]));
        assert!(!is_b_slice(&[0x65, 0b1011_0000]));
        // Truncated or empty: not known to be B.
        assert!(!is_b_slice(&[0x01]));
        assert!(!is_b_slice(&[]));
        assert!(!is_b_slice(&[0x01, 0, 0, 3, 0]));
    }
}
