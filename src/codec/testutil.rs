//! Test helpers: a bit writer to build parameter sets and slice headers, and escaping.

/// Writes bits MSB first (no escaping; see [`escape`]).
pub(crate) struct BitWriter {
    pub bytes: Vec<u8>,
    bits: u32,
}

impl BitWriter {
    pub fn new() -> Self {
        BitWriter { bytes: Vec::new(), bits: 0 }
    }

    pub fn u(&mut self, n: u32, v: u64) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = ((v >> i) & 1) as u8;
            let last = self.bytes.last_mut().unwrap();
            *last |= bit << (7 - self.bits % 8);
            self.bits += 1;
        }
    }

    pub fn flag(&mut self, b: bool) {
        self.u(1, b as u64);
    }

    pub fn ue(&mut self, v: u64) {
        let x = v + 1;
        let len = 64 - x.leading_zeros();
        self.u(len - 1, 0);
        self.u(len, x);
    }

    pub fn se(&mut self, v: i64) {
        let k = if v > 0 { 2 * v - 1 } else { -2 * v };
        self.ue(k as u64);
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> u32 {
        self.bits
    }

    /// rbsp_trailing_bits(): a one bit, then zeros to the byte boundary.
    pub fn trailing(&mut self) {
        self.u(1, 1);
        while !self.bits.is_multiple_of(8) {
            self.u(1, 0);
        }
    }
}

/// Inserts emulation prevention bytes (H.264 §7.4.1): 00 00 0x (x ≤ 3) → 00 00 03 0x.
pub(crate) fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 2);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}
