//! Bit-level reading of codec headers (SPS, slice headers, AudioSpecificConfig).

/// Reads bits MSB first; every read returns None past the end so a
/// truncated header can never panic.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Option<u64> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u64::from(bit))
    }

    pub fn flag(&mut self) -> Option<bool> {
        Some(self.bit()? == 1)
    }

    pub fn bits(&mut self, count: u32) -> Option<u64> {
        (0..count).try_fold(0u64, |acc, _| Some(acc << 1 | self.bit()?))
    }

    /// Unsigned exp-Golomb. Values fit 32 bits, so more than 31
    /// leading zeros means garbage.
    pub fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u64 << zeros) - 1 + self.bits(zeros)?)
    }

    /// Signed exp-Golomb.
    pub fn se(&mut self) -> Option<i64> {
        let k = i64::try_from(self.ue()?).ok()?;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}
