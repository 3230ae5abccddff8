//! Batched sends to one viewer: the packets queued together go down in one `sendmmsg`, as
//! runs of equal-size datagrams with UDP generic segmentation offload (Linux `UDP_SEGMENT`),
//! so the kernel runs its per-datagram send path (route lookup, skb setup, queueing) once
//! per run instead of once per packet. Profiles of the send path put ~80 % of the server's
//! CPU in the kernel's `sendto`, so this is where the cost per viewer is.
//!
//! GSO wants every segment of a run but the last to have the same size, which the
//! repacketizer's FU-A fragments of a NAL unit do. Where GSO is refused (old kernel, odd
//! device) runs go out packet by packet, and GSO stays off for the process.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::udp::{self, Control, PeerAddr};
/// The kernel's limit on segments per GSO send (`UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;

static GSO_OFF: AtomicBool = AtomicBool::new(false);

/// Runs per batch at most (a batch never holds more datagrams than this either).
pub const MAX_RUNS: usize = 16;

/// Equal-size datagrams (but the last) back to back in the batch buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    start: usize,
    seg: usize,
    count: usize,
    last_len: usize,
}

impl Run {
    fn len(&self) -> usize {
        (self.count - 1) * self.seg + self.last_len
    }

    /// Can a datagram of `len` bytes follow?
    fn takes(&self, len: usize) -> bool {
        self.last_len == self.seg && len <= self.seg && self.count < MAX_SEGMENTS
    }
}

/// Datagrams queued for one destination, back to back in one buffer. Write a datagram
/// into `next_slot()`, then `push` its length; `flush` sends them all.
pub struct Batch {
    buf: Vec<u8>,
    runs: [Run; MAX_RUNS],
    nruns: usize,
    packets: usize,
    used: usize,
    max: usize,
    slot: usize,
}

impl Batch {
    /// Room for `max` datagrams (at most `MAX_RUNS`) of up to `slot` bytes each.
    pub fn new(max: usize, slot: usize) -> Batch {
        let max = max.clamp(1, MAX_RUNS);
        Batch {
            buf: vec![0; max * slot],
            runs: [Run::default(); MAX_RUNS],
            nruns: 0,
            packets: 0,
            used: 0,
            max,
            slot,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Where to write the next datagram (`slot` bytes).
    pub fn next_slot(&mut self) -> &mut [u8] {
        &mut self.buf[self.used..self.used + self.slot]
    }

    /// Takes the `len` bytes written into `next_slot` into the batch; sends the batch when
    /// it is full.
    pub async fn push(&mut self, len: usize, socket: &UdpSocket, to: PeerAddr) -> io::Result<()> {
        match self.runs[..self.nruns].last_mut() {
            Some(run) if run.takes(len) => {
                run.count += 1;
                run.last_len = len;
            }
            _ => {
                self.runs[self.nruns] = Run {
                    start: self.used,
                    seg: len,
                    count: 1,
                    last_len: len,
                };
                self.nruns += 1;
            }
        }
        self.used += len;
        self.packets += 1;
        if self.packets >= self.max {
            return self.flush(socket, to).await;
        }
        Ok(())
    }

    /// Sends the batch to `to` and empties it. A send error loses these packets only.
    pub async fn flush(&mut self, socket: &UdpSocket, to: PeerAddr) -> io::Result<()> {
        let runs = &self.runs[..self.nruns];
        let r = if runs.is_empty() {
            Ok(())
        } else if GSO_OFF.load(Ordering::Relaxed) {
            send_each(socket, &self.buf, runs, to).await
        } else {
            match send_runs(socket, &self.buf, runs, to).await {
                Err(e) if gso_unsupported(&e) => {
                    GSO_OFF.store(true, Ordering::Relaxed);
                    tracing::info!(error = %e, "UDP GSO refused by the kernel; sending packet by packet");
                    send_each(socket, &self.buf, runs, to).await
                }
                r => r,
            }
        };
        self.nruns = 0;
        self.packets = 0;
        self.used = 0;
        r
    }
}

fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

async fn send_each(socket: &UdpSocket, buf: &[u8], runs: &[Run], to: PeerAddr) -> io::Result<()> {
    for run in runs {
        for d in buf[run.start..run.start + run.len()].chunks(run.seg) {
            udp::send(socket, d, to).await?;
        }
    }
    Ok(())
}

async fn send_runs(socket: &UdpSocket, buf: &[u8], runs: &[Run], to: PeerAddr) -> io::Result<()> {
    let v6 = socket.local_addr()?.is_ipv6();
    let addr = udp::sockaddr(v6, to.remote);
    let local = to.local.map(|l| udp::mapped_for(v6, l));
    let mut sent = 0;
    while sent < runs.len() {
        sent += socket
            .async_io(Interest::WRITABLE, || {
                sendmmsg_runs(socket, buf, &runs[sent..], &addr, local)
            })
            .await?;
    }
    Ok(())
}

/// One `sendmmsg`: a message per run, with `UDP_SEGMENT` on runs of more than one datagram
/// and the peer's local address as source. Returns how many runs the kernel took.
fn sendmmsg_runs(
    socket: &UdpSocket,
    buf: &[u8],
    runs: &[Run],
    addr: &socket2::SockAddr,
    local: Option<std::net::IpAddr>,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = runs.len().min(MAX_RUNS);
    // SAFETY: the message headers point into `buf`, `addr`, `iovs` and `controls`, which all
    // outlive the call; `write_control` fills each aligned control buffer within its size;
    // every run lies inside `buf` (the batch built it).
    unsafe {
        let mut iovs: [libc::iovec; MAX_RUNS] = std::mem::zeroed();
        let mut controls = [Control::default(); MAX_RUNS];
        let mut msgs: [libc::mmsghdr; MAX_RUNS] = std::mem::zeroed();
        for i in 0..n {
            let run = &runs[i];
            iovs[i] = libc::iovec {
                iov_base: buf[run.start..].as_ptr() as *mut libc::c_void,
                iov_len: run.len(),
            };
            let segment = if run.count > 1 {
                Some(
                    u16::try_from(run.seg)
                        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
                )
            } else {
                None
            };
            let clen = udp::write_control(&mut controls[i], segment, local);
            let m = &mut msgs[i].msg_hdr;
            m.msg_name = addr.as_ptr() as *mut libc::c_void;
            m.msg_namelen = addr.len();
            m.msg_iov = &mut iovs[i];
            m.msg_iovlen = 1;
            if clen > 0 {
                m.msg_control = controls[i].0.as_mut_ptr() as *mut libc::c_void;
                m.msg_controllen = clen as _;
            }
        }
        let r = libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0);
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams of mixed sizes arrive one by one and in order, whether or not they were
    /// batched with GSO.
    #[tokio::test]
    async fn batches_arrive_as_the_datagrams_they_were() {
        let tx = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // From a local address other than the kernel's choice: every run keeps the source.
        let src: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let to = PeerAddr::new(rx.local_addr().unwrap(), Some(src));
        let sizes = [
            1200, 1200, 1200, 700, 1200, 1200, 300, 300, 1300, 1200, 1200, 1200, 1200, 90, 1400,
            1400, 1400, 1400, 1400, 1400, 1400, 1400, 1400, 1400, 1400, 1400, 1400,
        ];
        let mut batch = Batch::new(MAX_RUNS, 1500);
        for (i, &n) in sizes.iter().enumerate() {
            let slot = batch.next_slot();
            slot[..n].fill(i as u8);
            batch.push(n, &tx, to).await.unwrap();
        }
        batch.flush(&tx, to).await.unwrap();
        assert!(batch.is_empty());
        eprintln!("GSO in use: {}", !GSO_OFF.load(Ordering::Relaxed));
        let mut buf = [0u8; 2000];
        for (i, &n) in sizes.iter().enumerate() {
            let (got, from) =
                tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv_from(&mut buf))
                    .await
                    .expect("datagram arrives")
                    .unwrap();
            assert_eq!(got, n, "datagram {i}");
            assert_eq!(from.ip(), src, "datagram {i} source");
            assert!(
                buf[..got].iter().all(|&b| b == i as u8),
                "datagram {i} content"
            );
        }
    }
}
