//! The HTTP servers under abuse: a connection cap, header timeouts (slowloris and idle), a
//! megabyte-long header, methods other than GET and HEAD, odd tokens; and the real binary still
//! answering challenges and GET /shutdown promptly with hundreds of such connections open.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_client::serve::{HttpReply, Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

async fn start(limits: Limits) -> (u16, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    let handler = Arc::new(|_: &hyper::Method, path: &str| {
        if path == "/" {
            HttpReply::text("hello\n")
        } else {
            HttpReply::not_found()
        }
    });
    tokio::spawn(serve(
        "test",
        listener,
        None,
        handler,
        limits,
        cancel.clone(),
    ));
    (port, cancel)
}

/// Whether the server closes `stream` within `limit` (read returns EOF or an error).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // e.g. a 408/431 answer before the close
            Err(_) => return false,
        }
    }
}

async fn get(port: u16, method: &str, path: &str) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_string(&mut text))
        .await
        .expect("no answer within 2 s")
        .unwrap();
    text
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let (port, cancel) = start(limits).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_secs(1)).await,
        "the 5th connection was kept"
    );
    drop(idle.pop());
    // Once a slot is free the server answers again.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = tcp
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut text = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), tcp.read_to_string(&mut text)).await;
        if text.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot was freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
}

#[tokio::test]
async fn idle_and_slowloris_connections_are_timed_out() {
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (port, cancel) = start(limits).await;
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: a")
        .await
        .unwrap();
    let mut kept_alive = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    kept_alive
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(2)).await,
        "a silent connection stayed open"
    );
    assert!(
        closed_within(&mut slow, Duration::from_secs(2)).await,
        "a slowloris connection stayed open"
    );
    assert!(
        closed_within(&mut kept_alive, Duration::from_secs(2)).await,
        "an idle keep-alive stayed open"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    cancel.cancel();
}

#[tokio::test]
async fn a_megabyte_header_is_refused_and_the_server_goes_on() {
    let (port, cancel) = start(Limits::default()).await;
    let mut big = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    big.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        .await
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..16 {
        if big.write_all(&chunk).await.is_err() {
            break; // the server already gave up on it
        }
    }
    assert!(closed_within(&mut big, Duration::from_secs(2)).await);
    assert!(get(port, "GET", "/").await.starts_with("HTTP/1.1 200"));
    cancel.cancel();
}

#[tokio::test]
async fn only_get_and_head_are_allowed() {
    let (port, cancel) = start(Limits::default()).await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let reply = get(port, method, "/").await;
        assert!(reply.starts_with("HTTP/1.1 405"), "{method}: {reply}");
        assert!(
            reply.to_ascii_lowercase().contains("allow: get, head"),
            "{reply}"
        );
    }
    let head = get(port, "HEAD", "/").await;
    assert!(
        head.starts_with("HTTP/1.1 200") && !head.contains("hello"),
        "{head}"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_does_not_stop_challenges_or_shutdown() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let mut client = Client::start(&pebble, "http01", &["abuse.example.test"], &[]);
    client.wait_serving(&pebble).await;

    // Hundreds of idle and slowloris connections on both plain-HTTP servers, and a 1 MB header.
    let mut held = Vec::new();
    for port in [pebble.http_port, client.shutdown_port] {
        for i in 0..200 {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            if i % 2 == 0 {
                tcp.write_all(b"GET /shutdown HTTP/1.1\r\nX-Slow: ")
                    .await
                    .unwrap();
            }
            held.push(tcp);
        }
        let mut big = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        big.write_all(b"GET /shutdown HTTP/1.1\r\nX-Big: ")
            .await
            .unwrap();
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..16 {
            if big.write_all(&chunk).await.is_err() {
                break;
            }
        }
        held.push(big);
    }

    let started = Instant::now();
    for (path, want) in [
        ("/.well-known/acme-challenge/unknown", "404"),
        ("/.well-known/acme-challenge/..%2F..%2Fetc", "404"),
        ("/.well-known/acme-challenge/../shutdown", "404"),
        (
            &*format!("/.well-known/acme-challenge/{}", "A".repeat(4000)),
            "404",
        ),
    ] {
        let reply = get(pebble.http_port, "GET", path).await;
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {want}")),
            "{path}: {reply}"
        );
    }
    assert!(
        get(pebble.http_port, "POST", "/.well-known/acme-challenge/x")
            .await
            .starts_with("HTTP/1.1 405")
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "challenge answers slowed: {:?}",
        started.elapsed()
    );

    let reply = get(client.shutdown_port, "GET", "/shutdown").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let status = client.wait_exit(Duration::from_secs(2)).await;
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "exit within 2 s despite {} open connections",
        held.len()
    );
    drop(held);
}
