//! Small helpers every room uses.

use rand::RngCore;

/// 128 random bits as hex: session ids and URLs must not be guessable from one another.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a 503 asks the client to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 5;
