//! Where a response goes: a UDP address (sent from the socket the request
//! came in on) or a stream connection's writer.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Where a response goes.
#[derive(Debug, Clone)]
pub enum Peer {
    Udp {
        socket: Arc<UdpSocket>,
        addr: SocketAddr,
    },
    Stream {
        tx: mpsc::Sender<Vec<u8>>,
        addr: SocketAddr,
    },
}

impl Peer {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Udp { addr, .. } | Self::Stream { addr, .. } => *addr,
        }
    }

    pub(super) fn reliable(&self) -> bool {
        matches!(self, Self::Stream { .. })
    }

    pub(super) async fn send(&self, bytes: Vec<u8>) {
        match self {
            Self::Udp { socket, addr } => {
                if let Err(e) = socket.send_to(&bytes, addr).await {
                    tracing::debug!(%addr, error = %e, "UDP send failed");
                }
            }
            Self::Stream { tx, .. } => {
                let _ = tx.send(bytes).await;
            }
        }
    }
}
