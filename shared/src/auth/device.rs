//! Device tokens (OWASP's "device cookies"): what lets a member in while their email is being
//! guessed at.
//!
//! A successful log-in answers a device token bound to the member's (normalised) email: a random
//! device id, an expiry, and an HMAC over both and the email under the signing keyset's refresh
//! secret. A later log-in that presents a valid token for the same email is throttled on that
//! device alone: the failures of strangers on the email, or of neighbours behind the same
//! address, do not block it (docs/login-throttle.md). A token that does not check (forged,
//! expired, another email's) is simply not trusted: the log-in is throttled as any stranger's.

use crate::auth::SigningKeyset;
use crate::error::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};

/// How long a device stays trusted without logging in again.
pub const DEVICE_TOKEN_TTL: Duration = Duration::days(90);

/// Longest token accepted for checking (`<22-char id>.<digits>.<43-char MAC>` is about 80).
const MAX_TOKEN_LEN: usize = 128;

fn payload(email: &str, device_id: &str, expires: i64) -> String {
    format!("{email}\0{device_id}\0{expires}")
}

/// A token trusting this device for `email` until `now` + [`DEVICE_TOKEN_TTL`]; `device_id` is
/// kept when renewing, a new random one otherwise.
pub fn issue_device_token(
    keyset: &SigningKeyset,
    email: &str,
    device_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String> {
    let device_id = device_id.map_or_else(
        || URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        str::to_owned,
    );
    let expires = (now + DEVICE_TOKEN_TTL).timestamp();
    let mac = keyset.device_mac(&payload(email, &device_id, expires))?;
    Ok(format!("{device_id}.{expires}.{mac}"))
}

/// The device id of `token` when it is a valid, unexpired token for `email`; `None` otherwise
/// (a malformed, forged, expired or another email's token is not an error: it is not trusted).
pub fn trusted_device(
    keyset: &SigningKeyset,
    email: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (device_id, expires, mac) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || device_id.is_empty() {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    if expires <= now.timestamp() {
        return None;
    }
    let expected = keyset
        .device_mac(&payload(email, device_id, expires))
        .ok()?;
    // Compared in constant time: the MAC is the secret part.
    let same = expected.len() == mac.len()
        && expected
            .bytes()
            .zip(mac.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then(|| device_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_trusts_its_device_for_its_email_only_until_it_expires() {
        let keyset = SigningKeyset::generate(Utc::now());
        let now = Utc::now();
        let token = issue_device_token(&keyset, "kim@cafe.example", None, now).expect("token");
        let device = trusted_device(&keyset, "kim@cafe.example", &token, now).expect("trusted");
        // Renewed: the same device, a new expiry.
        let renewed =
            issue_device_token(&keyset, "kim@cafe.example", Some(&device), now).expect("token");
        assert_eq!(
            trusted_device(&keyset, "kim@cafe.example", &renewed, now),
            Some(device.clone())
        );
        assert_eq!(
            trusted_device(&keyset, "lee@cafe.example", &token, now),
            None
        );
        let later = now + DEVICE_TOKEN_TTL + Duration::seconds(1);
        assert_eq!(
            trusted_device(&keyset, "kim@cafe.example", &token, later),
            None
        );
        // Another keyset's secret, a changed expiry, a changed id, garbage: not trusted.
        let other = SigningKeyset::generate(now);
        assert_eq!(
            trusted_device(&other, "kim@cafe.example", &token, now),
            None
        );
        let (id, rest) = token.split_once('.').expect("id");
        let (_, mac) = rest.split_once('.').expect("mac");
        let stretched = format!("{id}.{}.{mac}", (now + Duration::days(900)).timestamp());
        assert_eq!(
            trusted_device(&keyset, "kim@cafe.example", &stretched, now),
            None
        );
        let swapped = format!("other{id}.{rest}");
        assert_eq!(
            trusted_device(&keyset, "kim@cafe.example", &swapped, now),
            None
        );
        for junk in ["", "...", "a.b.c", &"x".repeat(500), "a.1.b.c"] {
            assert_eq!(trusted_device(&keyset, "kim@cafe.example", junk, now), None);
        }
    }
}
