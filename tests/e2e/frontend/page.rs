//! The description page: GET and HEAD of `/`, 404 elsewhere, 405 for other methods, and text
//! replaced while serving.

use acme_client::serve::{Page, Site};
use reqwest::{Method, StatusCode, Version};

use super::*;

#[tokio::test]
async fn the_page_describes_and_can_change() {
    bounded(async {
        let page = Page::new();
        page.set("serving a certificate for front.test\n".to_owned());
        let front = Front::start(Site::Page(page.clone())).await;
        for h2 in [false, true] {
            let client = front.client(h2);
            let got = client.get(front.url("/")).send().await.unwrap();
            assert_eq!(
                got.version(),
                if h2 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                }
            );
            assert_eq!(got.status(), StatusCode::OK);
            assert_eq!(
                got.text().await.unwrap(),
                "serving a certificate for front.test\n"
            );

            let head = client.head(front.url("/")).send().await.unwrap();
            assert_eq!(head.status(), StatusCode::OK);
            assert_eq!(head.text().await.unwrap(), "");

            let missing = client.get(front.url("/other")).send().await.unwrap();
            assert_eq!(missing.status(), StatusCode::NOT_FOUND);

            let post = client
                .request(Method::POST, front.url("/"))
                .send()
                .await
                .unwrap();
            assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(post.headers()["allow"], "GET, HEAD");
        }
        page.set("renewed\n".to_owned());
        let client = front.client(false);
        let got = client.get(front.url("/")).send().await.unwrap();
        assert_eq!(got.text().await.unwrap(), "renewed\n");
    })
    .await;
}

#[tokio::test]
async fn a_page_not_yet_set_is_not_found() {
    bounded(async {
        let front = Front::start(Site::Page(Page::new())).await;
        let got = front
            .client(false)
            .get(front.url("/"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn cancel_closes_idle_connections_and_frees_the_port() {
    bounded(async {
        let page = Page::new();
        page.set("x\n".to_owned());
        let front = Front::start(Site::Page(page)).await;
        let mut h1 = front.h1().await;
        let req = hyper::Request::get("/")
            .header("host", NAME)
            .body(acme_client::serve::empty())
            .unwrap();
        assert_eq!(h1.send_request(req).await.unwrap().status(), StatusCode::OK);
        front.stop();
        // Deterministic waits: poll with the test's deadline.
        while !h1.is_closed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while TcpListener::bind(("127.0.0.1", front.port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
