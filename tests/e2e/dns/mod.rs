//! The DNS server over real sockets, UDP and TCP: answers, NODATA, REFUSED, what resolvers rely
//! on; `abuse` has what an attacker sends (garbage, fuzzing, floods, amplification, truncation).

mod abuse;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use acme_client::acme::types::Identifier;
use acme_client::challenge::dns::{DnsHandler, serve};
use acme_client::challenge::{ChallengeKind, ChallengeStore, Presented};

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

impl Running {
    /// Cancels the server and asserts that it stops within 3 s, whatever clients still hold.
    async fn stop_promptly(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .expect("the DNS server must stop on cancel within 3 s, whatever clients hold")
            .unwrap()
            .unwrap();
    }
}

/// The dns-01 value for `token` at _acme-challenge.zone.test.
fn publish(store: &ChallengeStore, token: &str) -> Presented {
    let answer = publication(
        ChallengeKind::Dns01,
        &Identifier::dns("zone.test"),
        token,
        &format!("{token}.k"),
    )
    .unwrap();
    store.publish(answer)
}

/// Two dns-01 values at _acme-challenge.zone.test, as for a name and its wildcard.
fn present_two_txt_values(store: &ChallengeStore) -> [Presented; 2] {
    ["t1", "t2"].map(|token| publish(store, token))
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg.to_bytes().unwrap()
}

/// A query carrying EDNS `version` with a UDP payload size of `payload` and the DO bit.
fn query_edns(id: u16, name: &str, qtype: RecordType, version: u8, payload: u16) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_version(version)
        .set_dnssec_ok(true)
        .set_max_payload(payload);
    msg.set_edns(edns);
    msg.to_bytes().unwrap()
}

/// The answer's bytes, over TCP (RFC 1035 §4.2.2 framing) or UDP, within 2 s.
async fn ask_raw(server: SocketAddr, packet: &[u8], tcp: bool) -> Vec<u8> {
    let wait = Duration::from_secs(2);
    if !tcp {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(packet, server).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let n = tokio::time::timeout(wait, sock.recv(&mut buf))
            .await
            .expect("no UDP answer within 2 s")
            .unwrap();
        buf.truncate(n);
        return buf;
    }
    let mut stream = TcpStream::connect(server).await.unwrap();
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(wait, stream.read_exact(&mut len))
        .await
        .expect("no TCP answer within 2 s")
        .unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    buf
}

async fn ask(server: SocketAddr, packet: &[u8], tcp: bool) -> Message {
    Message::from_bytes(&ask_raw(server, packet, tcp).await).unwrap()
}

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let dns = start().await;
    let _published = present_two_txt_values(&dns.store);
    for tcp in [false, true] {
        let a = ask(dns.addr, &query(1, "www.zone.test.", RecordType::A), tcp).await;
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.metadata.authoritative, "AA must be set");
        assert_eq!(
            a.answers[0].data,
            RData::A(Ipv4Addr::new(192, 0, 2, 7).into())
        );

        let txt = query(2, "_acme-challenge.zone.test.", RecordType::TXT);
        let txt = ask(dns.addr, &txt, tcp).await;
        assert_eq!(
            txt.answers.len(),
            2,
            "a name and its wildcard: both values at once"
        );

        let nodata = ask(dns.addr, &query(3, "zone.test.", RecordType::AAAA), tcp).await;
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

        let refused = ask(dns.addr, &query(4, "example.org.", RecordType::A), tcp).await;
        assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
        assert!(refused.answers.is_empty());
    }
    dns.cancel.cancel();
    dns.task.await.unwrap().unwrap();
}

/// The answers a resolver asks for besides A and TXT, over the wire: SOA and NS at the apex
/// (the NS an in-zone name with the record's address), NODATA for CAA at every name (RFC 8659
/// §3: no CAA, any CA may issue), a minimal ANY (RFC 8482 §4.2).
#[tokio::test]
async fn apex_caa_and_any_over_udp_and_tcp() {
    let dns = start().await;
    for tcp in [false, true] {
        let soa = ask(dns.addr, &query(1, "zone.test.", RecordType::SOA), tcp).await;
        assert!(soa.metadata.authoritative, "tcp={tcp}");
        assert_eq!(soa.answers.len(), 1, "tcp={tcp}");
        assert_eq!(soa.answers[0].record_type(), RecordType::SOA);

        let ns = ask(dns.addr, &query(2, "zone.test.", RecordType::NS), tcp).await;
        let RData::NS(host) = &ns.answers[0].data else {
            panic!("tcp={tcp}: {:?}", ns.answers);
        };
        assert_eq!(host.0.to_string(), "ns.zone.test.");
        let glue = ask(dns.addr, &query(3, "ns.zone.test.", RecordType::A), tcp).await;
        assert_eq!(
            glue.answers[0].data,
            RData::A(Ipv4Addr::new(192, 0, 2, 7).into())
        );

        for name in ["zone.test.", "a.b.zone.test."] {
            let caa = ask(dns.addr, &query(4, name, RecordType::CAA), tcp).await;
            assert_eq!(caa.metadata.response_code, ResponseCode::NoError);
            assert!(
                caa.metadata.authoritative && caa.answers.is_empty(),
                "{name}"
            );
            assert_eq!(caa.authorities[0].record_type(), RecordType::SOA);
        }

        let any = ask(dns.addr, &query(5, "www.zone.test.", RecordType::ANY), tcp).await;
        assert_eq!(any.answers.len(), 1, "tcp={tcp}");
        let RData::HINFO(hinfo) = &any.answers[0].data else {
            panic!("tcp={tcp}: {:?}", any.answers);
        };
        assert_eq!(&*hinfo.cpu, b"RFC8482");
    }
    dns.cancel.cancel();
    let _ = dns.task.await;
}

/// What a resolver that Let's Encrypt uses relies on, over the wire (issue "DNS the way CAs see
/// it", item 2): the question's case kept in the answer (0x20), the DO bit copied back (RFC 3225
/// §3), BADVERS for EDNS versions above 0 (RFC 6891 §6.1.3), over UDP and TCP.
#[tokio::test]
async fn resolver_habits_over_udp_and_tcp() {
    let dns = start().await;
    let with_edns = |version: u8| query_edns(42, "WwW.zOnE.TeSt.", RecordType::A, version, 1232);
    for tcp in [false, true] {
        let fine = ask(dns.addr, &with_edns(0), tcp).await;
        assert_eq!(
            fine.metadata.response_code,
            ResponseCode::NoError,
            "tcp={tcp}"
        );
        assert_eq!(fine.queries[0].name().to_string(), "WwW.zOnE.TeSt.");
        assert_eq!(fine.answers[0].name.to_string(), "WwW.zOnE.TeSt.");
        let edns = fine.edns.as_ref().expect("EDNS in the answer");
        assert!(edns.flags().dnssec_ok, "DO bit not copied (tcp={tcp})");
        let bad = ask(dns.addr, &with_edns(1), tcp).await;
        // 16 is BADVERS in an OPT context; hickory decodes the number as BADSIG, its TSIG twin.
        assert_eq!(u16::from(bad.metadata.response_code), 16, "tcp={tcp}");
        assert!(bad.answers.is_empty());
        assert_eq!(bad.edns.as_ref().map(|e| e.version()), Some(0));
    }
    dns.cancel.cancel();
    let _ = dns.task.await;
}
