//! The socket loops: UDP datagrams, TCP and TLS streams (framed by
//! `framing`), each feeding [`Endpoint::handle`]. Stream connections are
//! capped per address and in all, and bounded by first-byte, message and
//! idle timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backlog::queue_info;
use super::endpoint::{ConnectionSlot, Endpoint, Peer};
use super::framing::{next_frame, Frame};
use super::CallHandler;

/// How often (in datagrams) the UDP receive queue is looked at.
const QUEUE_CHECK_EVERY: u32 = 8;

/// Receives datagrams until `shutdown`.
pub async fn serve_udp<H: CallHandler>(
    endpoint: Arc<Endpoint<H>>,
    socket: Arc<UdpSocket>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65_535];
    let mut datagrams: u32 = 0;
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok((n, addr)) => {
                datagrams = datagrams.wrapping_add(1);
                // While behind, every datagram: the flag clears as soon as
                // the queue has drained, even if no more traffic follows.
                if endpoint.is_behind() || datagrams % QUEUE_CHECK_EVERY == 0 {
                    endpoint.observe_udp_queue(queue_info(&*socket));
                }
                let peer = Peer::Udp {
                    socket: Arc::clone(&socket),
                    addr,
                };
                endpoint.handle(&buf[..n], peer).await;
            }
            // ICMP errors from earlier sends surface here on Linux; keep serving.
            Err(e) => tracing::debug!(error = %e, "UDP receive error"),
        }
    }
}

/// Accepts TCP connections until `shutdown`.
pub async fn serve_tcp<H: CallHandler>(
    endpoint: Arc<Endpoint<H>>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let Some(slot) = endpoint.admit(addr.ip()) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_stream(
                    slot,
                    Arc::clone(&endpoint),
                    stream,
                    addr,
                    shutdown.child_token(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one stream connection (TCP, or TLS after the handshake).
pub async fn serve_stream<H, S>(
    _slot: ConnectionSlot<H>,
    endpoint: Arc<Endpoint<H>>,
    stream: S,
    addr: SocketAddr,
    shutdown: CancellationToken,
) where
    H: CallHandler,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let max = endpoint.config().max_message_bytes;
    let idle = endpoint.config().tcp_idle_timeout;
    let opened = Instant::now();
    let mut message_started: Option<Instant> = None;
    let mut read_any = false;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    'connection: loop {
        loop {
            match next_frame(&buf, max) {
                Ok(Frame::Message { len }) => {
                    let peer = Peer::Stream {
                        tx: tx.clone(),
                        addr,
                    };
                    endpoint.handle(&buf[..len], peer).await;
                    buf.drain(..len);
                }
                Ok(Frame::KeepAlive { consumed, pong }) => {
                    if pong {
                        let _ = tx.send(b"\r\n".to_vec()).await;
                    }
                    buf.drain(..consumed);
                }
                Ok(Frame::Incomplete) => break,
                Err(e) => {
                    tracing::info!(target: "security", source = %addr, reason = %e, "closing stream: framing lost");
                    break 'connection;
                }
            }
        }
        // Partial bytes start the message clock (slow senders are cut off).
        message_started = if buf.is_empty() {
            None
        } else {
            message_started.or(Some(Instant::now()))
        };
        let deadline = match (read_any, message_started) {
            (false, _) => opened + endpoint.config().tcp_first_byte_timeout,
            (true, Some(start)) => {
                (start + endpoint.config().tcp_message_timeout).min(Instant::now() + idle)
            }
            (true, None) => Instant::now() + idle,
        };
        let mut chunk = [0u8; 8192];
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, reader.read(&mut chunk)) => r,
            () = shutdown.cancelled() => break,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                read_any = true;
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// Loads a rustls server configuration from PEM files.
///
/// # Errors
/// Unreadable files, no certificate or key in them, or a key that does not
/// match the certificate.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS connections until `shutdown`; each handshake is bounded.
pub async fn serve_tls<H: CallHandler>(
    endpoint: Arc<Endpoint<H>>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "TLS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = endpoint.admit(addr.ip()) else {
            continue;
        };
        let (endpoint, acceptor, shutdown) = (
            Arc::clone(&endpoint),
            acceptor.clone(),
            shutdown.child_token(),
        );
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_stream(slot, endpoint, tls, addr, shutdown).await,
                Ok(Err(e)) => {
                    tracing::info!(target: "security", source = %addr, reason = %e, "TLS handshake failed")
                }
                Err(_) => {
                    tracing::info!(target: "security", source = %addr, reason = "handshake timeout", "TLS handshake failed")
                }
            }
        });
    }
}
