//! The DNS server over real sockets, UDP and TCP: answers, NODATA, REFUSED, and that garbage
//! does not stop it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use acme_client::challenge::dns::{DnsHandler, serve};
use acme_client::challenge::{ChallengeKind, ChallengeStore};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
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
        Ipv4Addr::new(192, 0, 2, 7),
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
    let _g1 = dns
        .store
        .present(ChallengeKind::Dns01.publication("zone.test", "t1", "t1.a"));
    let _g2 = dns
        .store
        .present(ChallengeKind::Dns01.publication("zone.test", "t2", "t2.b"));
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
