//! A DNS relay between a resolver and the client's DNS server, over UDP and TCP, that counts what
//! the resolver sends and can turn every name of an answer to lowercase: then the client's server
//! looks like an authoritative server that does not echo the question's case (0x20).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_server::proto::op::Message;
use hickory_server::proto::rr::Name;
use hickory_server::proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::harness::free_port;

/// How long the relay waits for the client's server, or for the next query on a TCP connection.
const WAIT: Duration = Duration::from_secs(5);

/// What the relay does to the answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Byte for byte as the client's server sent them.
    Transparent,
    /// Question and owner names in lowercase, whatever case the question had.
    Lowercase,
}

/// What the relay has seen; read by the tests.
#[derive(Debug, Default)]
pub struct Seen {
    pub udp_queries: AtomicUsize,
    pub tcp_queries: AtomicUsize,
    /// Queries whose name has an upper-case letter: 0x20 at work, as Pebble asks in lowercase.
    pub upper_case_queries: AtomicUsize,
    /// Answers in which [`Mode::Lowercase`] changed a name.
    pub lowered_answers: AtomicUsize,
}

/// The relay's listeners, on one port of 127.0.0.1 for UDP and TCP; stopped on drop.
pub struct Relay {
    pub port: u16,
    pub seen: Arc<Seen>,
    cancel: CancellationToken,
}

impl Relay {
    /// Listens on a free port and relays to 127.0.0.1@`upstream_port`.
    pub async fn start(upstream_port: u16, mode: Mode) -> Relay {
        let port = free_port();
        let udp = UdpSocket::bind(("127.0.0.1", port)).await.unwrap();
        let tcp = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let seen = Arc::new(Seen::default());
        let cancel = CancellationToken::new();
        let hop = Hop {
            upstream,
            mode,
            seen: seen.clone(),
        };
        tokio::spawn(
            cancel
                .clone()
                .run_until_cancelled_owned(hop.clone().udp(udp)),
        );
        tokio::spawn(
            cancel
                .clone()
                .run_until_cancelled_owned(hop.tcp(tcp, cancel.clone())),
        );
        Relay { port, seen, cancel }
    }

    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// One relayed exchange's settings, shared by the listener tasks.
#[derive(Clone)]
struct Hop {
    upstream: SocketAddr,
    mode: Mode,
    seen: Arc<Seen>,
}

impl Hop {
    async fn udp(self, socket: UdpSocket) {
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            self.seen.udp_queries.fetch_add(1, Ordering::SeqCst);
            let query = buf[..n].to_vec();
            let (hop, socket) = (self.clone(), socket.clone());
            // One task per query, each ending within WAIT: the resolver sends in parallel.
            tokio::spawn(async move {
                if let Some(answer) = hop.udp_exchange(&query).await {
                    let _ = socket.send_to(&answer, from).await;
                }
            });
        }
    }

    async fn udp_exchange(&self, query: &[u8]) -> Option<Vec<u8>> {
        self.note(query);
        let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
        socket.send_to(query, self.upstream).await.ok()?;
        let mut buf = vec![0u8; 65535];
        let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(self.rewrite(&buf[..n]))
    }

    async fn tcp(self, listener: TcpListener, cancel: CancellationToken) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let hop = self.clone();
            tokio::spawn(
                cancel
                    .clone()
                    .run_until_cancelled_owned(async move { hop.tcp_connection(stream).await }),
            );
        }
    }

    /// Relays length-prefixed messages (RFC 1035 §4.2.2) both ways at once, as resolvers
    /// pipeline queries on a connection (RFC 7766 §6.2.1), until a side closes or idles.
    async fn tcp_connection(&self, client: TcpStream) -> Option<()> {
        let upstream = TcpStream::connect(self.upstream).await.ok()?;
        // Each message goes out in one write; without NODELAY a small one may still wait for
        // the peer's delayed ACK.
        client.set_nodelay(true).ok()?;
        upstream.set_nodelay(true).ok()?;
        let (mut client_in, mut client_out) = client.into_split();
        let (mut upstream_in, mut upstream_out) = upstream.into_split();
        tokio::select! {
            done = self.pump(&mut client_in, &mut upstream_out, true) => done,
            done = self.pump(&mut upstream_in, &mut client_out, false) => done,
        }
    }

    /// Moves messages from `from` to `to`: queries counted, answers rewritten.
    async fn pump(
        &self,
        from: &mut OwnedReadHalf,
        to: &mut OwnedWriteHalf,
        queries: bool,
    ) -> Option<()> {
        loop {
            let message = tokio::time::timeout(WAIT, read_message(from))
                .await
                .ok()??;
            let message = if queries {
                self.seen.tcp_queries.fetch_add(1, Ordering::SeqCst);
                self.note(&message);
                message
            } else {
                self.rewrite(&message)
            };
            write_message(to, &message).await?;
        }
    }

    /// Counts a query whose name has an upper-case letter.
    fn note(&self, query: &[u8]) {
        let Ok(message) = Message::from_bytes(query) else {
            return;
        };
        let upper = |name: &Name| name.to_ascii().bytes().any(|b| b.is_ascii_uppercase());
        if message.queries.iter().any(|q| upper(q.name())) {
            self.seen.upper_case_queries.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The answer as [`Mode`] says; one that does not parse is passed on as it is.
    fn rewrite(&self, answer: &[u8]) -> Vec<u8> {
        if self.mode == Mode::Transparent {
            return answer.to_vec();
        }
        let Ok(mut message) = Message::from_bytes(answer) else {
            return answer.to_vec();
        };
        // Name equality ignores case: compare the text.
        let changes = |name: &Name| name.to_ascii() != name.to_lowercase().to_ascii();
        if message.queries.iter().any(|q| changes(q.name()))
            || message.answers.iter().any(|r| changes(&r.name))
        {
            self.seen.lowered_answers.fetch_add(1, Ordering::SeqCst);
        }
        for query in &mut message.queries {
            query.name = query.name.to_lowercase();
        }
        for record in message
            .answers
            .iter_mut()
            .chain(&mut message.authorities)
            .chain(&mut message.additionals)
        {
            record.name = record.name.to_lowercase();
        }
        message.to_bytes().unwrap_or_else(|_| answer.to_vec())
    }
}

async fn read_message(stream: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await.ok()?;
    Some(message)
}

async fn write_message(stream: &mut OwnedWriteHalf, message: &[u8]) -> Option<()> {
    let len = u16::try_from(message.len()).ok()?;
    let mut framed = Vec::with_capacity(2 + message.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await.ok()
}
