//! The SDK clients trust exactly the roots we give them (`cafe::aws::https_client`): a TLS
//! endpoint whose certificate chains to a test CA answers a client trusting that CA, and is
//! refused by the production client, which trusts only Amazon Trust Services.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
use aws_smithy_http_client::tls::TrustStore;
use cafe::aws::{SdkTrustStore, https_client, https_client_trusting};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEST_CA: &[u8] = include_bytes!("fixtures/test-ca.pem");
const LOCALHOST_CERT: &[u8] = include_bytes!("fixtures/localhost.pem");
const LOCALHOST_KEY: &[u8] = include_bytes!("fixtures/localhost.key");

/// A DynamoDB stand-in over TLS that answers every request with one table name; counts the
/// requests it read (a refused handshake never gets that far).
async fn tls_endpoint() -> (u16, Arc<AtomicUsize>) {
    let certs = CertificateDer::pem_slice_iter(LOCALHOST_CERT)
        .collect::<Result<Vec<_>, _>>()
        .expect("test certificate");
    let key = PrivateKeyDer::from_pem_slice(LOCALHOST_KEY).expect("test key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut read = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(n) = tls.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    read.extend_from_slice(&buffer[..n]);
                    if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if read.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"TableNames":["over-tls"]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, requests)
}

fn dynamodb(
    port: u16,
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .endpoint_url(format!("https://localhost:{port}"))
            .retry_config(RetryConfig::disabled())
            .http_client(http)
            .build(),
    )
}

#[tokio::test]
async fn a_client_trusting_the_test_ca_completes_the_call_over_tls() {
    let (port, requests) = tls_endpoint().await;
    let client = dynamodb(
        port,
        https_client_trusting(TrustStore::empty().with_pem_certificate(TEST_CA)),
    );
    let tables = client
        .list_tables()
        .send()
        .await
        .expect("list tables over TLS");
    assert_eq!(tables.table_names(), ["over-tls".to_owned()]);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_production_client_refuses_a_chain_outside_amazon_trust_services() {
    let (port, requests) = tls_endpoint().await;
    let client = dynamodb(port, https_client(SdkTrustStore::AmazonTrustServices));
    let error = client
        .list_tables()
        .send()
        .await
        .expect_err("a certificate from another CA must be refused");
    assert!(
        matches!(error, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "refused at the handshake, not answered: {error:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 0, "no request got through");
}
