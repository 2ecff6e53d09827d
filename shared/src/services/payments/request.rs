//! The wire of `POST /payment`: its body, its rules, its answer, and the answer as stored for an
//! `Idempotency-Key`.

use crate::domain::order::{MAX_PAYMENT_PARTS, RequestedPayment};
use crate::domain::{OrderStatus, Payment};
use crate::error::{Error, Result};
use crate::http::Validate;
use crate::store::StoredResponse;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `POST /payment` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentRequest {
    pub order_id: String,
    pub payments: Vec<PaymentPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentPart {
    pub amount: i64,
    #[serde(rename = "type")]
    pub payment_type: crate::domain::PaymentType,
}

impl PaymentRequest {
    pub(crate) fn parts(&self) -> Vec<RequestedPayment> {
        self.payments
            .iter()
            .map(|p| RequestedPayment {
                amount: p.amount,
                payment_type: p.payment_type,
            })
            .collect()
    }

    /// SHA-256 of the canonical body (the parsed request re-serialised, so whitespace and key
    /// order do not matter): what an `Idempotency-Key` is bound to.
    pub fn canonical_hash(&self) -> Result<String> {
        let canonical = serde_json::to_vec(self)
            .map_err(|e| Error::Internal(format!("payment request encoding failed: {e}")))?;
        Ok(Sha256::digest(&canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

impl Validate for PaymentRequest {
    fn validate(&self) -> Result<()> {
        if self.order_id.is_empty() || self.order_id.len() > 64 {
            return Err(Error::invalid("orderId"));
        }
        if self.payments.is_empty() || self.payments.len() > MAX_PAYMENT_PARTS {
            return Err(Error::invalid("payments"));
        }
        for (index, part) in self.payments.iter().enumerate() {
            if part.amount <= 0 {
                return Err(Error::invalid(format!("payments[{index}].amount")));
            }
        }
        Ok(())
    }
}

/// `POST /payment` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentReceipt {
    pub order_id: String,
    pub status: OrderStatus,
    pub payments: Vec<Payment>,
    /// The order's pickup number for the day (`docs/floor.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_number: Option<u32>,
}

/// A response as stored for a replay: its status and its body, verbatim.
pub(crate) fn stored_of(response: &Response<Body>) -> StoredResponse {
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Body::Empty => String::new(),
        _ => String::new(),
    };
    StoredResponse {
        status: response.status().as_u16(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentType;

    fn request(body: &str) -> PaymentRequest {
        serde_json::from_str(body).expect("request")
    }

    #[test]
    fn the_hash_ignores_layout_but_not_content() {
        let a = request(r#"{"orderId":"o","payments":[{"amount":1500,"type":"CARD"}]}"#);
        let b = request(
            "{ \"payments\" : [ {\"type\":\"CARD\", \"amount\":1500} ], \"orderId\":\"o\" }",
        );
        let c = request(r#"{"orderId":"o","payments":[{"amount":1500,"type":"POINT"}]}"#);
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        assert_ne!(a.canonical_hash(), c.canonical_hash());
        assert_eq!(a.canonical_hash().map(|h| h.len()), Ok(64));
    }

    #[test]
    fn body_rules_name_the_field() {
        let part = |amount| PaymentPart {
            amount,
            payment_type: PaymentType::Card,
        };
        let mut r = PaymentRequest {
            order_id: String::new(),
            payments: vec![part(1)],
        };
        assert_eq!(r.validate(), Err(Error::invalid("orderId")));
        r.order_id = "o".into();
        assert_eq!(r.validate(), Ok(()));
        r.payments = vec![];
        assert_eq!(r.validate(), Err(Error::invalid("payments")));
        r.payments = vec![part(1); 6];
        assert_eq!(r.validate(), Err(Error::invalid("payments")));
        r.payments = vec![part(5), part(0)];
        assert_eq!(r.validate(), Err(Error::invalid("payments[1].amount")));
    }
}
