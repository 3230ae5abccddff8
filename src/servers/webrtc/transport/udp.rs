//! The shared socket's datagrams with their local address: which of our addresses a peer's
//! datagram was sent to, and sends that leave from that same address.
//!
//! The socket is bound to the wildcard address by default, and then the kernel picks the
//! source of each reply by route. A client on the same host that sends from 127.0.0.1 to our
//! interface address would get replies from 127.0.0.1, and strict ICE agents (aiortc,
//! libnice, pion) drop a response that does not come from the address the check went to
//! (RFC 8445 7.3). `IP_PKTINFO` / `IPV6_RECVPKTINFO` tell us where each datagram arrived,
//! and the same control message on a send sets its source: one socket, one port, any
//! number of local addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// A peer as we reach it: its address, and the local address its datagrams arrive at
/// (`None`: let the kernel choose, as for a socket bound to one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    pub remote: SocketAddr,
    pub local: Option<IpAddr>,
}

impl PeerAddr {
    pub fn new(remote: SocketAddr, local: Option<IpAddr>) -> PeerAddr {
        PeerAddr { remote, local }
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.local {
            Some(l) => write!(f, "{} (via {l})", self.remote),
            None => write!(f, "{}", self.remote),
        }
    }
}

/// Room for the control messages of one datagram: `UDP_SEGMENT` and a packet-info source.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Control(pub [u8; 64]);

impl Default for Control {
    fn default() -> Self {
        Control([0; 64])
    }
}

/// Linux: `SOL_UDP`, `UDP_SEGMENT` (not in every libc target's constants).
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

/// Asks the kernel for each datagram's destination address. Only a socket bound to the
/// wildcard address needs it; on one bound to a single address it is the same for all.
pub fn enable_pktinfo(socket: &UdpSocket) -> io::Result<()> {
    let local = socket.local_addr()?;
    if !local.ip().is_unspecified() {
        return Ok(());
    }
    let (level, name) = match local {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO),
        // Also covers IPv4 peers of a dual-stack socket (as v4-mapped addresses).
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    };
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one datagram: its length, sender and the local address it was sent to.
pub async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, PeerAddr)> {
    socket
        .async_io(Interest::READABLE, || recvmsg(socket, buf))
        .await
}

fn recvmsg(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, PeerAddr)> {
    // SAFETY: the header points into `buf`, `storage` and `control`, which outlive the call;
    // the kernel writes at most the lengths given; control messages are read within
    // `msg_controllen` through the CMSG macros.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut control = Control::default();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_name = &mut storage as *mut _ as *mut libc::c_void;
        m.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = control.0.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = control.0.len() as _;
        let n = libc::recvmsg(socket.as_raw_fd(), &mut m, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let from = match storage.ss_family as libc::c_int {
            libc::AF_INET => {
                let a = &*(&storage as *const _ as *const libc::sockaddr_in);
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                    u16::from_be(a.sin_port),
                )
            }
            libc::AF_INET6 => {
                let a = &*(&storage as *const _ as *const libc::sockaddr_in6);
                SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)),
                    u16::from_be(a.sin6_port),
                )
            }
            _ => return Err(io::Error::other("datagram from a non-IP address")),
        };
        let mut local = None;
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data as *const libc::in_pktinfo);
                    local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data as *const libc::in6_pktinfo);
                    local = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
        Ok((n as usize, PeerAddr::new(from, local)))
    }
}

/// Writes the control messages of one datagram into `control`: a GSO segment size (for a
/// run of more than one segment) and the source address. Returns their length.
pub fn write_control(control: &mut Control, segment: Option<u16>, local: Option<IpAddr>) -> usize {
    let mut at = 0;
    // SAFETY: every message is written at a CMSG_SPACE-aligned offset inside the 64-byte,
    // 8-aligned buffer: CMSG_SPACE(2) + CMSG_SPACE(sizeof in6_pktinfo) = 16 + 40 <= 64.
    unsafe {
        let mut put = |level: libc::c_int, typ: libc::c_int, data: &[u8]| {
            let hdr = control.0.as_mut_ptr().add(at) as *mut libc::cmsghdr;
            (*hdr).cmsg_level = level;
            (*hdr).cmsg_type = typ;
            (*hdr).cmsg_len = libc::CMSG_LEN(data.len() as u32) as _;
            std::ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(hdr), data.len());
            at += libc::CMSG_SPACE(data.len() as u32) as usize;
        };
        if let Some(seg) = segment {
            put(SOL_UDP, UDP_SEGMENT, &seg.to_ne_bytes());
        }
        match local {
            Some(IpAddr::V4(ip)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                put(libc::IPPROTO_IP, libc::IP_PKTINFO, as_bytes(&info));
            }
            Some(IpAddr::V6(ip)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                put(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, as_bytes(&info));
            }
            None => {}
        }
    }
    at
}

/// The bytes of a plain C struct.
fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: `T` is a padding-free libc struct here; reading it as bytes is defined.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}

/// The peer's address as the kernel wants it. A dual-stack socket sends to IPv4 peers as
/// v4-mapped IPv6.
pub fn sockaddr(socket_is_v6: bool, to: SocketAddr) -> socket2::SockAddr {
    match (socket_is_v6, to) {
        (true, SocketAddr::V4(v4)) => socket2::SockAddr::from(SocketAddr::new(
            IpAddr::V6(v4.ip().to_ipv6_mapped()),
            v4.port(),
        )),
        _ => socket2::SockAddr::from(to),
    }
}

/// Sends one datagram now, from the peer's local address; `WouldBlock` if the socket is full.
pub fn try_send(socket: &UdpSocket, buf: &[u8], to: PeerAddr) -> io::Result<usize> {
    socket.try_io(Interest::WRITABLE, || sendmsg(socket, buf, to))
}

/// Sends one datagram from the peer's local address, waiting for room in the socket.
pub async fn send(socket: &UdpSocket, buf: &[u8], to: PeerAddr) -> io::Result<usize> {
    socket
        .async_io(Interest::WRITABLE, || sendmsg(socket, buf, to))
        .await
}

fn sendmsg(socket: &UdpSocket, buf: &[u8], to: PeerAddr) -> io::Result<usize> {
    let v6 = socket.local_addr()?.is_ipv6();
    let addr = sockaddr(v6, to.remote);
    let mut control = Control::default();
    let local = to.local.map(|l| mapped_for(v6, l));
    let clen = write_control(&mut control, None, local);
    // SAFETY: the header points into `buf`, `addr` and `control`, which outlive the call.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_name = addr.as_ptr() as *mut libc::c_void;
        m.msg_namelen = addr.len();
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if clen > 0 {
            m.msg_control = control.0.as_mut_ptr() as *mut libc::c_void;
            m.msg_controllen = clen as _;
        }
        let n = libc::sendmsg(socket.as_raw_fd(), &m, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// A local address in the family of the socket (v4-mapped on an IPv6 socket).
pub fn mapped_for(socket_is_v6: bool, local: IpAddr) -> IpAddr {
    match (socket_is_v6, local) {
        (true, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram sent to 127.0.0.2 on a wildcard socket is answered from 127.0.0.2, though
    /// the kernel's own choice towards 127.0.0.1 would be 127.0.0.1.
    #[tokio::test]
    async fn replies_leave_from_the_address_the_request_came_to() {
        let server = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        enable_pktinfo(&server).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", ("127.0.0.2", port)).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, peer) = recv(&server, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(peer.remote, client.local_addr().unwrap());
        assert_eq!(peer.local, Some("127.0.0.2".parse().unwrap()));
        send(&server, b"pong", peer).await.unwrap();
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, SocketAddr::new("127.0.0.2".parse().unwrap(), port));
        // Without a source, the kernel picks 127.0.0.1: the defect this module exists for.
        send(&server, b"pong", PeerAddr::new(peer.remote, None))
            .await
            .unwrap();
        let (_, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(from.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn dual_stack_socket_reports_v4_mapped_local_addresses() {
        let Ok(server) = UdpSocket::bind("[::]:0").await else {
            return; // no IPv6 on this host
        };
        enable_pktinfo(&server).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if client.send_to(b"ping", ("127.0.0.2", port)).await.is_err() {
            return;
        }
        let mut buf = [0u8; 64];
        let (_, peer) = recv(&server, &mut buf).await.unwrap();
        let local = peer.local.expect("packet info");
        assert_eq!(
            local,
            IpAddr::V6("127.0.0.2".parse::<Ipv4Addr>().unwrap().to_ipv6_mapped())
        );
        send(&server, b"pong", peer).await.unwrap();
        let (_, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(from.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
    }
}
