//! Parsing and classifying INVITEs: a 500-byte SIPp INVITE and a 1.3 KB
//! carrier INVITE with 20 headers.
//!
//! Run: `cargo bench --bench sip_parse`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use inroute::sip::parse::{parse, ParseLimits};
use inroute::sip::request::classify;

const SIPP: &str = "INVITE sip:+15550100001@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-14933-1-0;rport\r\n\
From: \"Caller\" <sip:+14155550123@127.0.0.1:5061>;tag=14933SIPpTag001\r\n\
To: <sip:+15550100001@127.0.0.1:5060>\r\n\
Call-ID: 1-14933@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+14155550123@127.0.0.1:5061;transport=UDP>\r\n\
Max-Forwards: 70\r\n\
User-Agent: SIPp\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 129\r\n\r\n\
v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const CARRIER: &str = "INVITE sip:+15550100001@203.0.113.10:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK5f3a8c1d9e2b7a64;rport\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK77aa33cc;received=10.20.30.40\r\n\
Record-Route: <sip:198.51.100.7;lr;ftag=as1f2e3d4c>\r\n\
Max-Forwards: 68\r\n\
From: \"ACME CORP\" <sip:+14155550123@198.51.100.7;user=phone>;tag=as1f2e3d4c\r\n\
To: <sip:+15550100001@203.0.113.10;user=phone>\r\n\
Call-ID: 3c2f9a7e4b1d@198.51.100.7\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+14155550123@198.51.100.7:5060;transport=udp>\r\n\
P-Asserted-Identity: \"ACME CORP\" <sip:+14155550123@carrier.example;user=phone>\r\n\
Privacy: none\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
User-Agent: Carrier-SBC/5.1.2\r\n\
X-Carrier-Trace: 0a1b2c3d4e5f60718293a4b5c6d7e8f9\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 313\r\n\r\n\
v=0\r\no=- 3711 3711 IN IP4 198.51.100.7\r\ns=SBC\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=audio 31000 RTP/AVP 0 8 18 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n\
a=maxptime:40\r\na=silenceSupp:off - - - -\r\n";

fn bench(c: &mut Criterion) {
    for (name, msg) in [("sipp_500B", SIPP), ("carrier_1300B", CARRIER)] {
        let bytes = msg.as_bytes();
        assert!(
            parse(bytes, ParseLimits::default()).is_ok(),
            "{name} parses"
        );
        c.bench_function(&format!("parse/{name}"), |b| {
            b.iter(|| parse(black_box(bytes), ParseLimits::default()).is_ok())
        });
        let source = "198.51.100.7:5060".parse().unwrap();
        c.bench_function(&format!("classify/{name}"), |b| {
            b.iter(|| classify(black_box(bytes), source, ParseLimits::default(), &[]))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
