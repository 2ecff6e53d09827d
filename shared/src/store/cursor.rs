//! Opaque pagination cursors: a store's position, serialised and base64url-encoded. A cursor that
//! does not decode to the expected shape is a client error (400CO000 naming `cursor`).

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Serialize, de::DeserializeOwned};

pub fn encode<T: Serialize>(position: &T) -> Result<String> {
    let json = serde_json::to_vec(position)
        .map_err(|e| Error::Internal(format!("cursor encoding failed: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T> {
    if cursor.len() > 2048 {
        return Err(Error::invalid("cursor"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| Error::invalid("cursor"))?;
    serde_json::from_slice(&bytes).map_err(|_| Error::invalid("cursor"))
}
