//! Batched sends to one viewer with UDP generic segmentation offload (Linux `UDP_SEGMENT`):
//! the packets of a frame that are queued together go down in one `sendmsg`, and the kernel
//! runs its per-datagram send path (route lookup, skb setup, queueing) once per batch
//! instead of once per packet. Profiles of the send path put ~80 % of the server's CPU in
//! the kernel's `sendto`, so this is where the cost per viewer is.
//!
//! GSO wants every segment but the last to have the same size, which the repacketizer's
//! FU-A fragments of a frame do. Where GSO is refused (old kernel, odd device) the batch
//! goes out packet by packet, and GSO stays off for the process.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Linux: `SOL_UDP`, `UDP_SEGMENT` (not in every libc target's constants).
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
/// The kernel's limit on segments per GSO send (`UDP_MAX_SEGMENTS`).
pub const MAX_SEGMENTS: usize = 64;

static GSO_OFF: AtomicBool = AtomicBool::new(false);

/// Datagrams queued for one destination, back to back in one buffer. Write a datagram
/// into `next_slot()`, then `push` its length.
pub struct Batch {
    buf: Vec<u8>,
    /// Size of every datagram but possibly the last.
    seg: usize,
    count: usize,
    last_len: usize,
    max: usize,
    slot: usize,
}

impl Batch {
    /// Room for `max` datagrams of up to `slot` bytes each.
    pub fn new(max: usize, slot: usize) -> Batch {
        let max = max.clamp(1, MAX_SEGMENTS);
        Batch {
            // One slot more: a datagram written after the last that fits.
            buf: vec![0; (max + 1) * slot],
            seg: 0,
            count: 0,
            last_len: 0,
            max,
            slot,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn used(&self) -> usize {
        self.count.saturating_sub(1) * self.seg + self.last_len
    }

    /// Where to write the next datagram (`slot` bytes).
    pub fn next_slot(&mut self) -> &mut [u8] {
        let off = self.used();
        &mut self.buf[off..off + self.slot]
    }

    /// Takes the `len` bytes written into `next_slot` into the batch; sends the batch first
    /// when they cannot join it (a different size, or after a short one), and sends it
    /// when it is full.
    pub async fn push(&mut self, len: usize, socket: &UdpSocket, to: SocketAddr) -> io::Result<()> {
        let fits = self.count == 0
            || (self.last_len == self.seg && len <= self.seg && self.count < self.max);
        if !fits {
            let from = self.used();
            let r = self.flush(socket, to).await;
            self.buf.copy_within(from..from + len, 0);
            self.take(len);
            r?;
        } else {
            self.take(len);
        }
        if self.count >= self.max {
            return self.flush(socket, to).await;
        }
        Ok(())
    }

    fn take(&mut self, len: usize) {
        if self.count == 0 {
            self.seg = len;
        }
        self.count += 1;
        self.last_len = len;
    }

    /// Sends the batch to `to` and empties it. A send error loses these packets only.
    pub async fn flush(&mut self, socket: &UdpSocket, to: SocketAddr) -> io::Result<()> {
        let used = self.used();
        let (count, seg) = (self.count, self.seg);
        self.count = 0;
        self.last_len = 0;
        if count == 0 {
            return Ok(());
        }
        if count == 1 || GSO_OFF.load(Ordering::Relaxed) {
            return send_each(socket, &self.buf[..used], seg, to).await;
        }
        let data = &self.buf[..used];
        match send_gso(socket, data, seg, to).await {
            Ok(()) => Ok(()),
            Err(e) if gso_unsupported(&e) => {
                GSO_OFF.store(true, Ordering::Relaxed);
                tracing::info!(error = %e, "UDP GSO refused by the kernel; sending packet by packet");
                send_each(socket, data, seg, to).await
            }
            Err(e) => Err(e),
        }
    }
}

fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

async fn send_each(socket: &UdpSocket, data: &[u8], seg: usize, to: SocketAddr) -> io::Result<()> {
    for d in data.chunks(seg) {
        socket.send_to(d, to).await?;
    }
    Ok(())
}

async fn send_gso(socket: &UdpSocket, data: &[u8], seg: usize, to: SocketAddr) -> io::Result<()> {
    let addr = socket2::SockAddr::from(to);
    let seg = u16::try_from(seg).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    socket
        .async_io(Interest::WRITABLE, || sendmsg_gso(socket, data, seg, &addr))
        .await
}

fn sendmsg_gso(
    socket: &UdpSocket,
    data: &[u8],
    seg: u16,
    addr: &socket2::SockAddr,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: every pointer handed to the kernel points into `data`, `addr`, `iov` or
    // `control`, which outlive the call; the control buffer is sized with CMSG_SPACE and
    // aligned for `cmsghdr`.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        #[repr(C, align(8))]
        struct Control([u8; 64]);
        let mut control = Control([0; 64]);
        let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = addr.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = addr.len();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, seg);
        let n = libc::sendmsg(socket.as_raw_fd(), &msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams of mixed sizes arrive one by one and in order, whether or not they were
    /// batched with GSO.
    #[tokio::test]
    async fn batches_arrive_as_the_datagrams_they_were() {
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        let sizes = [
            1200, 1200, 1200, 700, 1200, 1200, 300, 300, 1300, 1200, 1200, 1200, 1200,
        ];
        let mut batch = Batch::new(4, 1500);
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
            let got = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv(&mut buf))
                .await
                .expect("datagram arrives")
                .unwrap();
            assert_eq!(got, n, "datagram {i}");
            assert!(
                buf[..got].iter().all(|&b| b == i as u8),
                "datagram {i} content"
            );
        }
    }
}
