//! How far behind the reader of a UDP socket is: the bytes waiting in its
//! kernel receive queue and the datagrams the kernel dropped (Linux
//! `SO_MEMINFO`). When the queue runs full, datagrams are lost, carriers
//! retransmit, and an overloaded server collapses; the endpoint sheds new
//! INVITEs with `503` before that (`sip.udp_shed_queue_percent`).
//! Elsewhere than Linux the queue is unknown and never counts as behind.
//!
//! The crate denies `unsafe`; [`queue_info`] is its one exception (a
//! `getsockopt` into a fixed array, which neither std nor socket2 offers).

/// A UDP socket's receive queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueInfo {
    /// Bytes of queued datagrams (kernel accounting, with overhead).
    pub queued: u32,
    /// The receive buffer size (SO_RCVBUF as the kernel keeps it).
    pub capacity: u32,
    /// Datagrams dropped since the socket opened.
    pub drops: u32,
}

impl QueueInfo {
    /// Whether the queue holds at least `percent` of its capacity (0: never).
    pub fn behind(&self, percent: u32) -> bool {
        percent > 0 && u64::from(self.queued) * 100 >= u64::from(self.capacity) * u64::from(percent)
    }
}

/// The receive queue of `socket`, if the platform tells.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn queue_info(socket: &impl std::os::fd::AsRawFd) -> Option<QueueInfo> {
    const SK_MEMINFO_VARS: usize = 9;
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a live, writable buffer of `len` bytes for the whole
    // call, and the kernel writes at most `len` bytes into it.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| QueueInfo {
        queued: info[libc::SK_MEMINFO_RMEM_ALLOC as usize],
        capacity: info[libc::SK_MEMINFO_RCVBUF as usize],
        drops: info[libc::SK_MEMINFO_DROPS as usize],
    })
}

#[cfg(not(target_os = "linux"))]
pub fn queue_info<S>(_socket: &S) -> Option<QueueInfo> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_past_the_share_of_the_buffer() {
        let q = |queued| QueueInfo {
            queued,
            capacity: 1000,
            drops: 0,
        };
        assert!(!q(499).behind(50));
        assert!(q(500).behind(50));
        assert!(!q(1000).behind(0), "0 disables shedding");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unread_datagrams_show_in_the_queue() {
        let reader = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let writer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let empty = queue_info(&reader).unwrap();
        assert_eq!(empty.queued, 0);
        assert!(empty.capacity > 0);
        for _ in 0..10 {
            writer
                .send_to(&[0u8; 500], reader.local_addr().unwrap())
                .unwrap();
        }
        let full = queue_info(&reader).unwrap();
        assert!(full.queued >= 10 * 500, "{full:?}");
        let mut buf = [0u8; 600];
        for _ in 0..10 {
            reader.recv_from(&mut buf).unwrap();
        }
        assert_eq!(queue_info(&reader).unwrap().queued, 0);
    }
}
