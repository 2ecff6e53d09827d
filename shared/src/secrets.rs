//! The HS256 key from AWS Secrets Manager, read once per process at Lambda init.
//!
//! The template generates the secret (`GenerateSecretString`), so no key ever appears in a
//! parameter, an environment variable or a log; functions get only its ARN (`JWT_SECRET_ARN`).

use crate::error::{Error, Result};

/// Shorter keys make HS256 brute-forceable; the template generates 64 characters.
const MIN_SECRET_BYTES: usize = 32;

/// Reads the secret `arn` (its `SecretString`, or `SecretBinary`) and returns the key bytes.
/// Call it once at init and keep the result: every call is a billed network request.
pub async fn fetch_jwt_secret(arn: &str, aws: &crate::aws::Aws) -> Result<Vec<u8>> {
    let output = aws
        .secrets_manager()
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|err| {
            // The SDK error names the operation and the cause, never the secret value.
            let cause = aws_sdk_secretsmanager::error::DisplayErrorContext(&err);
            tracing::error!(error = %cause, "reading the JWT secret failed");
            Error::Unavailable("secrets manager")
        })?;
    let key = match (output.secret_string(), output.secret_binary()) {
        (Some(text), _) => text.trim().as_bytes().to_vec(),
        (None, Some(blob)) => blob.as_ref().to_vec(),
        (None, None) => {
            return Err(Error::Internal("the JWT secret has no value".into()));
        }
    };
    if key.len() < MIN_SECRET_BYTES {
        return Err(Error::Internal(format!(
            "the JWT secret must be at least {MIN_SECRET_BYTES} bytes long"
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn moto_config() -> crate::aws::Aws {
        crate::aws::Aws::from_sdk_config(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(crate::testing::dynamodb_endpoint())
                .region(aws_config::Region::new("us-east-1"))
                .test_credentials()
                .load()
                .await,
        )
    }

    async fn create_secret(config: &crate::aws::Aws, value: &str) -> String {
        let name = format!("cafe-jwt-{}", crate::ids::new_id(chrono::Utc::now()));
        let created = config
            .secrets_manager()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("moto creates the secret");
        created.arn().expect("moto returns an ARN").to_owned()
    }

    #[tokio::test]
    async fn reads_the_secret_string_as_the_key() {
        let config = moto_config().await;
        let value = "k".repeat(64);
        let arn = create_secret(&config, &value).await;
        let key = fetch_jwt_secret(&arn, &config).await.expect("secret read");
        assert_eq!(key, value.as_bytes());
    }

    #[tokio::test]
    async fn refuses_a_short_secret_and_a_missing_one() {
        let config = moto_config().await;
        let arn = create_secret(&config, "too-short").await;
        let err = fetch_jwt_secret(&arn, &config)
            .await
            .expect_err("short key");
        assert!(matches!(err, Error::Internal(ref m) if m.contains("at least 32 bytes")));

        let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf";
        let err = fetch_jwt_secret(missing, &config)
            .await
            .expect_err("no secret");
        assert!(matches!(err, Error::Unavailable("secrets manager")));
    }
}
