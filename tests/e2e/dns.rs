//! The DNS server over real sockets, UDP and TCP: answers, NODATA, REFUSED, and that garbage
//! does not stop it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use acme_client::acme::types::Identifier;
use acme_client::challenge::dns::{DnsHandler, serve};
use acme_client::challenge::{ChallengeKind, ChallengeStore};

use crate::harness::publication;
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use hickory_server::proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

struct Running {
    addr: SocketAddr,
    store: ChallengeStore,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<acme_client::error::Result<()>>,
}

async fn start() -> Running {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let store = ChallengeStore::new();
    let handler = DnsHandler::new(
        &["zone.test".into(), "*.zone.test".into()],
        Some(Ipv4Addr::new(192, 0, 2, 7)),
        store.clone(),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(udp, tcp, handler, cancel.clone()));
    Running {
        addr,
        store,
        cancel,
        task,
    }
}

/// Two dns-01 values at _acme-challenge.zone.test, as for a name and its wildcard.
fn present_two_txt_values(store: &ChallengeStore) -> [acme_client::challenge::Presented; 2] {
    ["t1", "t2"].map(|token| {
        let answer = publication(
            ChallengeKind::Dns01,
            &Identifier::dns("zone.test"),
            token,
            &format!("{token}.k"),
        )
        .unwrap();
        store.publish(answer)
    })
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg.to_bytes().unwrap()
}

async fn udp_ask(server: SocketAddr, packet: &[u8]) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .expect("no UDP answer within 2 s")
        .unwrap();
    Message::from_bytes(&buf[..n]).unwrap()
}

async fn tcp_ask(server: SocketAddr, packet: &[u8]) -> Message {
    let mut tcp = TcpStream::connect(server).await.unwrap();
    tcp.write_all(&(packet.len() as u16).to_be_bytes())
        .await
        .unwrap();
    tcp.write_all(packet).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), tcp.read_exact(&mut len))
        .await
        .expect("no TCP answer within 2 s")
        .unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut buf).await.unwrap();
    Message::from_bytes(&buf).unwrap()
}

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let dns = start().await;
    let _published = present_two_txt_values(&dns.store);
    for over_tcp in [false, true] {
        let ask = |p: Vec<u8>| async move {
            if over_tcp {
                tcp_ask(dns.addr, &p).await
            } else {
                udp_ask(dns.addr, &p).await
            }
        };
        let a = ask(query(1, "www.zone.test.", RecordType::A)).await;
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.metadata.authoritative, "AA must be set");
        assert_eq!(
            a.answers[0].data,
            RData::A(Ipv4Addr::new(192, 0, 2, 7).into())
        );

        let txt = ask(query(2, "_acme-challenge.zone.test.", RecordType::TXT)).await;
        assert_eq!(
            txt.answers.len(),
            2,
            "a name and its wildcard: both values at once"
        );

        let nodata = ask(query(3, "zone.test.", RecordType::AAAA)).await;
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

        let refused = ask(query(4, "example.org.", RecordType::A)).await;
        assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
        assert!(refused.answers.is_empty());
    }
    dns.cancel.cancel();
    dns.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn garbage_does_not_stop_the_server() {
    let dns = start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [
        &b""[..],
        b"\x00",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        &[0u8; 600],
    ] {
        sock.send_to(junk, dns.addr).await.unwrap();
    }
    // Half a TCP length prefix, then silence.
    let mut held = TcpStream::connect(dns.addr).await.unwrap();
    held.write_all(&[0]).await.unwrap();
    let a = udp_ask(dns.addr, &query(9, "zone.test.", RecordType::A)).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    let a = tcp_ask(dns.addr, &query(10, "zone.test.", RecordType::A)).await;
    assert_eq!(a.answers.len(), 1);
    dns.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), dns.task)
        .await
        .expect("the DNS server must stop on cancel even with a client holding TCP")
        .unwrap()
        .unwrap();
}

/// xorshift64*: a tiny deterministic PRNG, so a failing input can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes, or a valid query with bytes flipped, cut short or extended.
fn fuzz_packet(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(4) == 0 {
        let len = rng.below(600);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut p = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(6) {
        match rng.below(4) {
            0 if !p.is_empty() => {
                let i = rng.below(p.len());
                p[i] = rng.next() as u8;
            }
            1 if !p.is_empty() => p.truncate(rng.below(p.len())),
            2 => p.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
            _ => {
                // Header counts are the interesting part: set one at random.
                if p.len() >= 12 {
                    let i = 4 + 2 * rng.below(4);
                    p[i] = rng.next() as u8;
                    p[i + 1] = rng.next() as u8;
                }
            }
        }
    }
    p
}

fn seeds() -> Vec<Vec<u8>> {
    let mut v = vec![
        query(1, "zone.test.", RecordType::A),
        query(2, "_acme-challenge.zone.test.", RecordType::TXT),
        query(3, "x.zone.test.", RecordType::AAAA),
        query(4, "example.org.", RecordType::ANY),
    ];
    let mut two = Message::new(5, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("zone.test.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("zone.test.").unwrap(),
        RecordType::TXT,
    ));
    v.push(two.to_bytes().unwrap());
    v
}

#[test]
fn fuzz_the_handler_for_a_bounded_time() {
    use hickory_server::net::xfer::Protocol;
    use hickory_server::server::Request;
    let store = ChallengeStore::new();
    let _g = store.publish(
        publication(
            ChallengeKind::Dns01,
            &Identifier::dns("zone.test"),
            "t",
            "t.k",
        )
        .unwrap(),
    );
    let handler = DnsHandler::new(&["zone.test".into()], Some(Ipv4Addr::LOCALHOST), store).unwrap();
    let seeds = seeds();
    let seed = 0x5eed_d05e_u64;
    let mut rng = Rng(seed);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let (mut parsed, mut total) = (0u32, 0u32);
    while total < 200_000 && std::time::Instant::now() < deadline {
        let packet = fuzz_packet(&mut rng, &seeds);
        total += 1;
        if let Ok(req) = Request::from_bytes(packet, "127.0.0.1:53".parse().unwrap(), Protocol::Udp)
        {
            parsed += 1;
            let answer = handler.answer(&req);
            // Never more than a handful of records, whatever the question.
            assert!(answer.answers.len() <= 2, "seed {seed:#x}, input {total}");
        }
    }
    assert!(
        total > 1000 && parsed > 100,
        "the fuzzer barely ran: {total} inputs, {parsed} parsed"
    );
}

#[tokio::test]
async fn random_packets_over_the_wire_then_correct_answers() {
    let dns = start().await;
    let _g = dns.store.publish(
        publication(
            ChallengeKind::Dns01,
            &Identifier::dns("zone.test"),
            "t",
            "t.k",
        )
        .unwrap(),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let seeds = seeds();
    let mut rng = Rng(0xfeed_beef);
    for _ in 0..3000 {
        let p = fuzz_packet(&mut rng, &seeds);
        sock.send_to(&p, dns.addr).await.unwrap();
    }
    // Random bytes over TCP too, on several connections.
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(dns.addr).await.unwrap();
        let p = fuzz_packet(&mut rng, &seeds);
        let _ = tcp.write_all(&(p.len() as u16).to_be_bytes()).await;
        let _ = tcp.write_all(&p).await;
    }
    let a = udp_ask(dns.addr, &query(77, "www.zone.test.", RecordType::A)).await;
    assert_eq!(a.metadata.id, 77);
    assert_eq!(a.answers.len(), 1);
    let a = tcp_ask(
        dns.addr,
        &query(78, "_acme-challenge.zone.test.", RecordType::TXT),
    )
    .await;
    assert_eq!(a.answers.len(), 1);
    dns.cancel.cancel();
}

#[tokio::test]
async fn answers_are_small_and_odd_questions_are_refused() {
    use hickory_server::proto::rr::DNSClass;
    let dns = start().await;
    let _published = present_two_txt_values(&dns.store);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (name, qtype) in [
        ("zone.test.", RecordType::ANY),
        ("_acme-challenge.zone.test.", RecordType::TXT),
        ("zone.test.", RecordType::SOA),
        ("a.b.c.zone.test.", RecordType::MX),
        ("example.org.", RecordType::ANY),
    ] {
        let q = query(9, name, qtype);
        sock.send_to(&q, dns.addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        // No amplification worth an attacker's while: under 512 bytes, and at most 5 times the
        // question (the largest answer is the two TXT values of a name and its wildcard, which
        // exist only while the CA validates).
        assert!(
            n <= 512 && n <= 5 * q.len(),
            "{name} {qtype}: {n} bytes for a {}-byte query",
            q.len()
        );
    }
    // The CH class (version.bind and friends) and several questions at once are not served.
    let mut chaos = Message::new(11, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("zone.test.").unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    let r = udp_ask(dns.addr, &chaos.to_bytes().unwrap()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let mut two = Message::new(12, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("zone.test.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("zone.test.").unwrap(),
        RecordType::A,
    ));
    let r = udp_ask(dns.addr, &two.to_bytes().unwrap()).await;
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert!(r.answers.is_empty());
    // An unknown type inside the zone: NODATA with the SOA.
    let r = udp_ask(
        dns.addr,
        &query(13, "zone.test.", RecordType::Unknown(65280)),
    )
    .await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    dns.cancel.cancel();
}

/// What a resolver that Let's Encrypt uses relies on, over the wire (issue "DNS the way CAs see
/// it", item 2): the question's case kept in the answer (0x20), the DO bit copied back (RFC 3225
/// §3), BADVERS for EDNS versions above 0 (RFC 6891 §6.1.3), over UDP and TCP.
#[tokio::test]
async fn resolver_habits_over_udp_and_tcp() {
    let dns = start().await;
    let with_edns = |version: u8| {
        let mut msg = Message::new(42, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(
            Name::from_ascii("WwW.zOnE.TeSt.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.set_version(version).set_dnssec_ok(true);
        msg.set_edns(edns);
        msg.to_bytes().unwrap()
    };
    for tcp in [false, true] {
        let ask = |packet: Vec<u8>| async move {
            if tcp {
                tcp_ask(dns.addr, &packet).await
            } else {
                udp_ask(dns.addr, &packet).await
            }
        };
        let fine = ask(with_edns(0)).await;
        assert_eq!(
            fine.metadata.response_code,
            ResponseCode::NoError,
            "tcp={tcp}"
        );
        assert_eq!(fine.answers[0].name.to_string(), "WwW.zOnE.TeSt.");
        let edns = fine.edns.as_ref().expect("EDNS in the answer");
        assert!(edns.flags().dnssec_ok, "DO bit not copied (tcp={tcp})");
        let bad = ask(with_edns(1)).await;
        // 16 is BADVERS in an OPT context; hickory decodes the number as BADSIG, its TSIG twin.
        assert_eq!(u16::from(bad.metadata.response_code), 16, "tcp={tcp}");
        assert!(bad.answers.is_empty());
        assert_eq!(bad.edns.as_ref().map(|e| e.version()), Some(0));
    }
    dns.cancel.cancel();
    let _ = dns.task.await;
}
