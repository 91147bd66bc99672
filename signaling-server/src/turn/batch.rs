//! Reading many datagrams in one system call (`recvmmsg`): the listener takes every client's
//! packets, and one call per batch instead of one per packet is most of what a relay can save.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams one call reads at most.
pub(crate) const BATCH: usize = 32;
/// Room per datagram: larger ones (over `core::MAX_MESSAGE`) are refused anyway.
pub(crate) const SLOT: usize = 4096 + 64;

/// Buffers for one batch, reused call after call.
pub(crate) struct Batch {
    data: Vec<u8>,
    addrs: [libc::sockaddr_storage; BATCH],
    iovecs: [libc::iovec; BATCH],
    headers: [libc::mmsghdr; BATCH],
}

/// One datagram of a batch: where it came from, and its bytes (`None`: cut short, too large).
pub(crate) type Datagram<'a> = (SocketAddr, Option<&'a [u8]>);

impl Batch {
    pub fn new() -> Box<Batch> {
        // SAFETY: all-zero is a valid value of these plain C structures.
        let mut b = Box::new(Batch {
            data: vec![0u8; BATCH * SLOT],
            addrs: unsafe { std::mem::zeroed() },
            iovecs: unsafe { std::mem::zeroed() },
            headers: unsafe { std::mem::zeroed() },
        });
        b.wire();
        b
    }

    fn wire(&mut self) {
        for i in 0..BATCH {
            self.iovecs[i] = libc::iovec {
                iov_base: self.data[i * SLOT..].as_mut_ptr() as *mut libc::c_void,
                iov_len: SLOT,
            };
            let h = &mut self.headers[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.headers[i].msg_len = 0;
        }
    }

    /// Reads what is waiting on `fd` (non-blocking) into the batch: how many datagrams.
    pub fn receive(&mut self, fd: RawFd) -> std::io::Result<usize> {
        for i in 0..BATCH {
            self.headers[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            self.headers[i].msg_hdr.msg_flags = 0;
        }
        // SAFETY: the headers point into this batch's own buffers, which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The `i`th datagram of the last `receive`.
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        let addr = to_socket_addr(&self.addrs[i])?;
        let h = &self.headers[i];
        let len = h.msg_len as usize;
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > SLOT {
            return Some((addr, None));
        }
        Some((addr, Some(&self.data[i * SLOT..i * SLOT + len])))
    }
}

fn to_socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_reads_every_waiting_datagram_with_its_sender_and_flags_oversized_ones() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 10], rx.local_addr().unwrap()).unwrap();
        }
        tx.send_to(&vec![9u8; SLOT + 10], rx.local_addr().unwrap())
            .unwrap();
        let mut b = Batch::new();
        let n = b.receive(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 6);
        for i in 0..5 {
            let (from, data) = b.get(i).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(data.unwrap(), &[i as u8; 10]);
        }
        assert_eq!(b.get(5).unwrap().1, None);
        let again = b.receive(rx.as_raw_fd()).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::WouldBlock);
    }
}
