//! Reading a secret's text from AWS Secrets Manager: the token keysets (private for the signing
//! functions, public for the verifiers), cached by [`crate::auth::tokens::SecretKeys`].
//!
//! No key ever appears in a parameter, an environment variable or a log; functions get only the
//! ARNs (`TOKEN_SIGNING_KEYS_ARN`, `TOKEN_VERIFYING_KEYS_ARN`), and `cafe-keys` writes the values.

use crate::error::{Error, Result};
use tracing::Instrument;

/// The `SecretString` of `arn` (or its `SecretBinary` as UTF-8). Every call is a billed network
/// request: callers cache the result. A secret with no value yet (created by the template,
/// never initialised with `cafe-keys rotate`) answers 503 like an unreachable Secrets Manager.
pub async fn fetch_secret_string(
    arn: &str,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<String> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .instrument(crate::spans::dependency_span(
            "secretsmanager",
            "GetSecretValue",
        ))
        .await
        .map_err(|err| {
            // The SDK error names the operation and the cause, never the secret value.
            let cause = aws_sdk_secretsmanager::error::DisplayErrorContext(&err);
            tracing::error!(error = %cause, secret = arn, "reading a secret failed");
            Error::Unavailable("secrets manager")
        })?;
    match (output.secret_string(), output.secret_binary()) {
        (Some(text), _) => Ok(text.trim().to_owned()),
        (None, Some(blob)) => String::from_utf8(blob.as_ref().to_vec())
            .map_err(|_| Error::Internal(format!("secret {arn} is not UTF-8"))),
        (None, None) => Err(Error::Internal(format!("secret {arn} has no value"))),
    }
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
        let name = format!("cafe-secret-{}", crate::ids::new_id(chrono::Utc::now()));
        let created = config
            .secrets_manager()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .instrument(crate::spans::dependency_span(
                "secretsmanager",
                "CreateSecret",
            ))
            .await
            .expect("moto creates the secret");
        created.arn().expect("moto returns an ARN").to_owned()
    }

    #[tokio::test]
    async fn reads_the_secret_string() {
        let config = moto_config().await;
        let value = "k".repeat(64);
        let arn = create_secret(&config, &value).await;
        let text = fetch_secret_string(&arn, &config.secrets_manager())
            .await
            .expect("secret read");
        assert_eq!(text, value);
    }

    #[tokio::test]
    async fn a_missing_secret_and_an_empty_one_are_unavailable() {
        let config = moto_config().await;
        let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf";
        let err = fetch_secret_string(missing, &config.secrets_manager())
            .await
            .expect_err("no secret");
        assert!(matches!(err, Error::Unavailable("secrets manager")));
        // What the template creates before `cafe-keys rotate` runs: a secret with no value.
        let name = format!("cafe-empty-{}", crate::ids::new_id(chrono::Utc::now()));
        let created = config
            .secrets_manager()
            .create_secret()
            .name(name)
            .send()
            .instrument(crate::spans::dependency_span(
                "secretsmanager",
                "CreateSecret",
            ))
            .await
            .expect("moto creates an empty secret");
        let arn = created.arn().expect("an ARN");
        let err = fetch_secret_string(arn, &config.secrets_manager())
            .await
            .expect_err("no value yet");
        assert!(
            matches!(err, Error::Unavailable("secrets manager")),
            "{err:?}"
        );
    }
}
