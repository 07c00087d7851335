//! What an attacker sends the DNS server, over UDP and TCP: garbage, fuzzed packets and broken
//! TCP framing, floods, and questions chosen for amplification. None of it stops the server, no
//! answer grows much past its question, and no UDP answer is larger than the query allows.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use acme_client::challenge::dns::DnsHandler;
use acme_client::challenge::{ChallengeStore, Presented};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use hickory_server::proto::serialize::binary::{BinDecodable, BinEncodable};
use hickory_server::server::Request;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::{ask, ask_raw, present_two_txt_values, publish, query, query_edns, start};

/// `packet` with its RFC 1035 §4.2.2 length prefix.
fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = (packet.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    out
}

/// Asks over UDP until an answer comes or `limit` passes: after a flood the socket may still be
/// dropping packets.
async fn udp_ask_within(server: std::net::SocketAddr, packet: &[u8], limit: Duration) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 65535];
    while Instant::now() < deadline {
        sock.send_to(packet, server).await.unwrap();
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await
        {
            return Message::from_bytes(&buf[..n]).unwrap();
        }
    }
    panic!("no UDP answer within {limit:?}");
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
    let a = ask(dns.addr, &query(9, "zone.test.", RecordType::A), false).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    let a = ask(dns.addr, &query(10, "zone.test.", RecordType::A), true).await;
    assert_eq!(a.answers.len(), 1);
    dns.stop_promptly().await;
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

/// Valid messages of every kind the server answers differently, for the fuzzer to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let name = |n: &str| Name::from_ascii(n).unwrap();
    let mut v = vec![
        query(1, "zone.test.", RecordType::A),
        query(2, "_acme-challenge.zone.test.", RecordType::TXT),
        query(3, "x.zone.test.", RecordType::AAAA),
        query(4, "example.org.", RecordType::ANY),
        query(5, "zone.test.", RecordType::NS),
        query(6, "zone.test.", RecordType::SOA),
        query(7, "a.zone.test.", RecordType::CAA),
        query(8, "zone.test.", RecordType::ANY),
        query_edns(9, "ZoNe.TeSt.", RecordType::A, 0, 4096),
        query_edns(10, "zone.test.", RecordType::A, 1, 1232),
    ];
    let mut two = Message::new(11, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(name("zone.test."), RecordType::A));
    two.add_query(Query::query(name("zone.test."), RecordType::TXT));
    v.push(two.to_bytes().unwrap());
    let mut chaos = Query::query(name("version.bind."), RecordType::TXT);
    chaos.set_query_class(DNSClass::CH);
    let mut ch = Message::new(12, MessageType::Query, OpCode::Query);
    ch.add_query(chaos);
    v.push(ch.to_bytes().unwrap());
    // A response sent to the server, and an UPDATE.
    let mut response = Message::new(13, MessageType::Response, OpCode::Query);
    response.add_query(Query::query(name("zone.test."), RecordType::A));
    v.push(response.to_bytes().unwrap());
    let mut update = Message::new(14, MessageType::Query, OpCode::Update);
    update.add_query(Query::query(name("zone.test."), RecordType::SOA));
    v.push(update.to_bytes().unwrap());
    v
}

#[test]
fn fuzz_the_handler_for_a_bounded_time() {
    let store = ChallengeStore::new();
    let _g = publish(&store, "t");
    let handler = DnsHandler::new(&["zone.test".into()], Some(Ipv4Addr::LOCALHOST), store).unwrap();
    let seeds = seeds();
    let seed = 0x5eed_d05e_u64;
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut parsed, mut total) = (0u32, 0u32);
    while total < 200_000 && Instant::now() < deadline {
        let packet = fuzz_packet(&mut rng, &seeds);
        total += 1;
        if let Ok(req) = Request::from_bytes(packet, "127.0.0.1:53".parse().unwrap(), Protocol::Udp)
        {
            parsed += 1;
            let answer = handler.answer(&req);
            // Never more than a handful of records, whatever the question.
            assert!(answer.answers.len() <= 2, "seed {seed:#x}, input {total}");
            if answer.code != ResponseCode::NoError {
                assert!(answer.answers.is_empty(), "seed {seed:#x}, input {total}");
            }
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
    let _g = publish(&dns.store, "t");
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let seeds = seeds();
    let mut rng = Rng(0xfeed_beef);
    for _ in 0..3000 {
        let p = fuzz_packet(&mut rng, &seeds);
        sock.send_to(&p, dns.addr).await.unwrap();
    }
    // Random messages over TCP too, several on each of several connections.
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(dns.addr).await.unwrap();
        let burst: Vec<u8> = (0..5)
            .flat_map(|_| framed(&fuzz_packet(&mut rng, &seeds)))
            .collect();
        let _ = tcp.write_all(&burst).await;
    }
    // Broken framing: an empty message, a length longer than what follows (then close), the
    // largest length with a few bytes, a valid query followed by junk in the same segment.
    let valid = query(30, "zone.test.", RecordType::A);
    for bytes in [
        vec![0, 0],
        vec![0, 40, 1, 2, 3],
        vec![0xff, 0xff, 0, 0, 0, 0],
        [framed(&valid), vec![0x7f; 9]].concat(),
    ] {
        let mut tcp = TcpStream::connect(dns.addr).await.unwrap();
        let _ = tcp.write_all(&bytes).await;
        let _ = tcp.shutdown().await;
    }
    for tcp in [false, true] {
        let a = ask(dns.addr, &query(77, "www.zone.test.", RecordType::A), tcp).await;
        assert_eq!(a.metadata.id, 77);
        assert_eq!(a.answers.len(), 1, "tcp={tcp}");
        let txt = query(78, "_acme-challenge.zone.test.", RecordType::TXT);
        let a = ask(dns.addr, &txt, tcp).await;
        assert_eq!(a.answers.len(), 1, "tcp={tcp}");
    }
    dns.cancel.cancel();
}

/// No amplification worth an attacker's while, for every kind of answer and over both
/// transports: under 512 bytes, and at most 5 times the question (the largest answer is the two
/// TXT values of a name and its wildcard, which exist only while the CA validates).
#[tokio::test]
async fn answers_are_small_and_odd_questions_are_refused() {
    let dns = start().await;
    let _published = present_two_txt_values(&dns.store);
    let txt = "_acme-challenge.zone.test.";
    let questions = [
        query(1, "zone.test.", RecordType::ANY),
        query(2, txt, RecordType::TXT),
        query(3, "zone.test.", RecordType::SOA),
        query(4, "zone.test.", RecordType::NS),
        query(5, "a.b.c.zone.test.", RecordType::CAA),
        query(6, "a.b.c.zone.test.", RecordType::MX),
        query(7, "example.org.", RecordType::ANY),
        query_edns(8, txt, RecordType::TXT, 0, 4096),
        query_edns(9, "zone.test.", RecordType::ANY, 0, 4096),
        // BADVERS
        query_edns(10, txt, RecordType::TXT, 1, 4096),
    ];
    for tcp in [false, true] {
        for q in &questions {
            let n = ask_raw(dns.addr, q, tcp).await.len();
            assert!(
                n <= 512 && n <= 5 * q.len(),
                "tcp={tcp}: {n} bytes for the {}-byte query {:?}",
                q.len(),
                Message::from_bytes(q).unwrap().queries
            );
        }
    }
    // The CH class (version.bind and friends) and several questions at once are not served.
    let mut chaos = Message::new(11, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("zone.test.").unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    let r = ask(dns.addr, &chaos.to_bytes().unwrap(), false).await;
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
    let r = ask(dns.addr, &two.to_bytes().unwrap(), false).await;
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert!(r.answers.is_empty());
    // An unknown type inside the zone: NODATA with the SOA.
    let r = ask(
        dns.addr,
        &query(13, "zone.test.", RecordType::Unknown(65280)),
        false,
    )
    .await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    dns.cancel.cancel();
}

/// Over UDP no answer is larger than the query allows: 512 bytes without EDNS (RFC 1035
/// §4.2.1), else the size it advertises (RFC 6891 §6.2.5), and never more than ours (1232).
/// What does not fit is left out and TC set (RFC 2181 §9), so the resolver asks again over TCP,
/// which carries the whole answer.
#[tokio::test]
async fn udp_answers_fit_the_size_the_query_allows_and_set_tc() {
    let dns = start().await;
    // 30 values at one name, about 1.7 kB of TXT: more than any UDP answer may carry here.
    let _published: Vec<Presented> = (0..30)
        .map(|i| publish(&dns.store, &format!("t{i}")))
        .collect();
    let name = "_acme-challenge.zone.test.";
    for (packet, limit) in [
        (query(1, name, RecordType::TXT), 512),
        (query_edns(2, name, RecordType::TXT, 0, 512), 512),
        (query_edns(3, name, RecordType::TXT, 0, 1000), 1000),
        (query_edns(4, name, RecordType::TXT, 0, 4096), 1232),
    ] {
        let raw = ask_raw(dns.addr, &packet, false).await;
        let cut = Message::from_bytes(&raw).unwrap();
        assert!(
            raw.len() <= limit,
            "{} bytes over UDP where {limit} are allowed",
            raw.len()
        );
        assert!(
            cut.metadata.truncation && cut.answers.len() < 30,
            "limit {limit}: TC={} with {} answers",
            cut.metadata.truncation,
            cut.answers.len()
        );
        let whole = ask(dns.addr, &packet, true).await;
        assert!(!whole.metadata.truncation);
        assert_eq!(whole.answers.len(), 30, "limit {limit}, over TCP");
    }
    // An answer that fits is whole, without TC.
    let small = ask(dns.addr, &query(5, "zone.test.", RecordType::A), false).await;
    assert!(!small.metadata.truncation && small.answers.len() == 1);
    dns.cancel.cancel();
}

/// A flood does not stop the server: thousands of UDP queries and junk from several sockets
/// that never read, TCP connections held with half a length prefix, and others pipelining
/// hundreds of queries without reading the answers. Afterwards a fresh query gets its answer
/// over each transport, and the server still stops promptly on cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_over_udp_and_tcp_leaves_the_server_answering() {
    let dns = start().await;
    let _g = publish(&dns.store, "t");
    let seeds = seeds();
    let mut rng = Rng(0xf100d);
    let mut senders = Vec::new();
    for _ in 0..4 {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..2500u16 {
            let packet = if i % 5 == 0 {
                fuzz_packet(&mut rng, &seeds)
            } else {
                query(i, "_acme-challenge.zone.test.", RecordType::TXT)
            };
            let _ = sock.send_to(&packet, dns.addr).await;
        }
        senders.push(sock);
    }
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut tcp = TcpStream::connect(dns.addr).await.unwrap();
        tcp.write_all(&[0]).await.unwrap();
        held.push(tcp);
    }
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(dns.addr).await.unwrap();
        let burst: Vec<u8> = (0..200u16)
            .flat_map(|i| framed(&query(i, "www.zone.test.", RecordType::A)))
            .collect();
        tcp.write_all(&burst).await.unwrap();
        held.push(tcp);
    }
    let a = udp_ask_within(
        dns.addr,
        &query(77, "www.zone.test.", RecordType::A),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(a.answers.len(), 1);
    let a = ask(dns.addr, &query(78, "www.zone.test.", RecordType::A), true).await;
    assert_eq!(a.answers.len(), 1);
    dns.stop_promptly().await;
    drop(held);
}
