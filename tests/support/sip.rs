//! A minimal SIP UAC over real sockets, for tests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A received response: status code and the raw text.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub text: String,
}

impl Response {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let status = text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
        Some(Self { status, text })
    }
}

/// An INVITE (or other request) with sensible headers.
pub fn request(method: &str, called: &str, branch: &str, call_id: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:{called}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch={branch};rport\r\n\
         From: <sip:+14155550123@carrier.example>;tag=from1\r\n\
         To: <sip:{called}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A UDP client socket on loopback.
pub struct Udp {
    pub socket: UdpSocket,
    pub server: SocketAddr,
}

impl Udp {
    pub async fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Self { socket, server }
    }

    pub async fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// The next response within `wait`, or `None`.
    pub async fn recv(&self, wait: Duration) -> Option<Response> {
        let mut buf = vec![0u8; 65_535];
        let (n, _) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Response::parse(&buf[..n])
    }

    /// Responses until one with a status >= 200 (provisionals included).
    pub async fn until_final(&self, wait: Duration) -> Vec<Response> {
        let mut all = Vec::new();
        while let Some(r) = self.recv(wait).await {
            let done = r.status >= 200;
            all.push(r);
            if done {
                break;
            }
        }
        all
    }
}

/// Sends raw bytes over a fresh TCP connection; returns every response
/// received until the server closes or `wait` passes without data, and
/// whether the server closed the connection.
pub async fn tcp_exchange(
    server: SocketAddr,
    chunks: &[&[u8]],
    wait: Duration,
) -> (Vec<Response>, bool) {
    tcp_exchange_until(server, chunks, wait, usize::MAX).await
}

/// Like [`tcp_exchange`], but stops once `finals` final responses arrived.
pub async fn tcp_exchange_until(
    server: SocketAddr,
    chunks: &[&[u8]],
    wait: Duration,
    finals: usize,
) -> (Vec<Response>, bool) {
    let mut stream = TcpStream::connect(server).await.unwrap();
    for chunk in chunks {
        stream.write_all(chunk).await.unwrap();
        stream.flush().await.unwrap();
    }
    let mut buf = Vec::new();
    let mut closed = false;
    loop {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if split_responses(&buf)
                    .iter()
                    .filter(|r| r.status >= 200)
                    .count()
                    >= finals
                {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    (split_responses(&buf), closed)
}

fn split_responses(buf: &[u8]) -> Vec<Response> {
    let text = String::from_utf8_lossy(buf).into_owned();
    text.split("SIP/2.0 ")
        .filter(|s| !s.is_empty())
        .filter_map(|s| Response::parse(format!("SIP/2.0 {s}").as_bytes()))
        .collect()
}
