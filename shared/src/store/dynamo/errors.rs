//! How DynamoDB failures become contract errors. Conditions that fail are domain answers and are
//! mapped by each operation; what is left here is the transport: unreachable, timed out or
//! throttled after the SDK's retries → 503, anything else → 500.

use crate::error::Error;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Service error codes that mean "try again later", once the SDK has run out of retries.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

pub(crate) fn sdk_error<E, R>(err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "dynamodb unreachable");
            Error::Unavailable("dynamodb")
        }
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("unknown");
            if TRANSIENT_CODES.contains(&code) {
                tracing::warn!(code, "dynamodb throttled or failing");
                Error::Unavailable("dynamodb")
            } else {
                tracing::error!(
                    code,
                    message = ctx.err().message().unwrap_or(""),
                    "dynamodb refused a request"
                );
                Error::Internal(format!("dynamodb {code}"))
            }
        }
        _ => {
            tracing::error!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "dynamodb request not sent");
            Error::Internal("dynamodb request could not be built".into())
        }
    }
}

/// serde_dynamo failures: a stored item that does not have the expected shape is a bug.
pub(crate) fn shape_error(e: serde_dynamo::Error) -> Error {
    Error::Internal(format!("dynamodb item shape: {e}"))
}
