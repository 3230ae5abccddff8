//! What reaches the shared WebRTC UDP socket before any session trusts it: STUN binding
//! requests (ICE-lite answers them) and DTLS ClientHellos, which are reassembled from their
//! fragments to read `use_srtp` before the DTLS stack runs.
//!
//! The input is split at its first byte into datagrams fed to one assembler, as a peer
//! sending a fragmented hello would. Checked besides "no panic": a completed hello's
//! profile list is what the parser of unfragmented hellos reads from the same datagram
//! when that datagram is one record carrying the whole hello.
#![no_main]

use std::net::SocketAddr;

use hubcast::servers::webrtc::dtls_sniff::{find_hello, ClientHelloAssembler, Hello};
use hubcast::servers::webrtc::transport::ice::answer_binding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from: SocketAddr = ([127, 0, 0, 1], 5000).into();
    let _ = answer_binding(data, from, |_| None);

    let Some((&parts, rest)) = data.split_first() else {
        return;
    };
    let parts = usize::from(parts % 4) + 1;
    let chunk = rest.len().div_ceil(parts).max(1);
    let mut a = ClientHelloAssembler::default();
    for d in rest.chunks(chunk) {
        let one_record = d.len() >= 13 && d.len() == 13 + usize::from(u16::from_be_bytes([d[11], d[12]]));
        let fresh = ClientHelloAssembler::default().push(d);
        if let Ok(Some(_)) = a.push(d) {
            if let (true, Ok(Some(alone)), Some(Hello::Client(seen))) =
                (one_record, fresh, find_hello(d))
            {
                assert_eq!(alone, seen);
            }
            break;
        }
    }
});
