//! A renewed certificate swapped in while serving: open keep-alive connections (HTTP/1.1 and
//! HTTP/2) carry on with the old one, new handshakes get the new one.

use acme_client::serve::https::{describe, site_config};
use acme_client::serve::{Page, Site};
use http_body_util::BodyExt as _;
use hyper::{Request, StatusCode};

use super::*;

fn leaf(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn open_connections_keep_going_and_new_ones_get_the_new_certificate() {
    bounded(async {
        let page = Page::new();
        let front = Front::start(Site::Page(page.clone())).await;
        let first = leaf(&front.tls(&[]).await);
        let (renewed, key) = front.ca.leaf();
        page.set(describe(&renewed));
        assert_ne!(renewed.certs[0], first);

        let mut h1 = front.h1().await;
        let mut h2 = front.h2().await;
        let get = |uri: String| {
            Request::get(uri)
                .header("host", NAME)
                .body(acme_client::serve::empty())
                .unwrap()
        };
        let h2_get = || {
            Request::get(front.url("/"))
                .body(acme_client::serve::empty())
                .unwrap()
        };
        assert_eq!(
            h1.send_request(get("/".into())).await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            h2.send_request(h2_get()).await.unwrap().status(),
            StatusCode::OK
        );

        front.router.set_site(site_config(&renewed, &key).unwrap());

        // The same connections still answer, with the new page text.
        for _ in 0..3 {
            let answer = h1.send_request(get("/".into())).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            assert!(
                std::str::from_utf8(&body)
                    .unwrap()
                    .contains(&renewed.info.serial)
            );
            let answer = h2.send_request(h2_get()).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
        }
        // A new handshake sees the new certificate.
        let fresh = front.tls(&[]).await;
        assert_eq!(leaf(&fresh), renewed.certs[0]);
        assert_ne!(leaf(&fresh), first);
    })
    .await;
}
