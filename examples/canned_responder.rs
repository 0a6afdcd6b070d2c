//! The load benchmark's ceiling: the same SIP endpoint (parser, transactions,
//! sockets) answering every INVITE with a canned 302 and no routing at all.
//!
//! `cargo run --release --example canned_responder -- 127.0.0.1:0`
//! prints `udp <addr>` and `tcp <addr>` on stdout, then serves until killed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use inroute::sip::endpoint::{Endpoint, EndpointConfig};
use inroute::sip::limiter::{Budget, Limiter};
use inroute::sip::parse::ParseLimits;
use inroute::sip::transaction::Timers;
use inroute::sip::transport::{serve_tcp, serve_udp};
use inroute::sip::{Answer, CallFacts, CallHandler};
use tokio_util::sync::CancellationToken;

struct Canned;

impl CallHandler for Canned {
    fn knows_source(&self, _: IpAddr) -> bool {
        true
    }

    fn route(&self, _: CallFacts) -> impl std::future::Future<Output = Answer> + Send {
        std::future::ready(Answer {
            status: 302,
            reason: "Moved Temporarily".into(),
            headers: vec![("Contact".into(), "<sip:agent_main@agents.invalid?X-Inroute-Decision-Id=dec_canned&X-Anyreach-Agent-Id=agent_main&X-Anyreach-Agent-Version=1>".into())],
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let off = Budget {
        rate: 0.0,
        burst: 1.0,
    };
    let endpoint = Endpoint::new(
        Canned,
        EndpointConfig {
            timers: Timers::default(),
            max_transactions: 1_000_000,
            max_pending_invites: 1_000_000,
            udp_shed_queue_percent: 0,
            max_message_bytes: 65_535,
            parse: ParseLimits::default(),
            drop_unknown_sources: false,
            tcp_idle_timeout: Duration::from_secs(120),
            tcp_first_byte_timeout: Duration::from_secs(5),
            tcp_message_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 10_000,
            scanner_user_agents: Vec::new(),
        },
        Limiter::new(64, off, off, Duration::from_secs(10)),
    );
    let udp = tokio::net::UdpSocket::bind(addr).await?;
    let tcp = tokio::net::TcpListener::bind(addr).await?;
    println!("udp {}", udp.local_addr()?);
    println!("tcp {}", tcp.local_addr()?);
    let stop = CancellationToken::new();
    tokio::spawn(serve_tcp(Arc::clone(&endpoint), tcp, stop.child_token()));
    serve_udp(endpoint, Arc::new(udp), stop).await;
    Ok(())
}
