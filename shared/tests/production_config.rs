//! Production refuses to run unsafe: no mock gateway for a function that moves money, no gateway
//! without TLS or with its secret in a plain variable, no inline token keys, no development
//! keyset (docs/security.md). Each case is the environment a deployed function would have, with
//! the one unsafe setting.

use cafe::auth::{Jwks, SigningKeyset};
use cafe::config::{Config, GatewayUse, TokenKey};
use std::collections::HashMap;

/// What `template.yaml` gives payment-create on Lambda.
fn deployed_payment_create() -> HashMap<&'static str, String> {
    HashMap::from([
        ("AWS_LAMBDA_FUNCTION_NAME", "payment-create".to_owned()),
        ("CAFE_BACKEND", "aws".to_owned()),
        ("TABLE_NAME", "cafe-table".to_owned()),
        ("REDIS_URL", "rediss://cache.example:6379".to_owned()),
        (
            "REDIS_AUTH_SECRET_ARN",
            "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:locks-AbCdEf".to_owned(),
        ),
        (
            "TOKEN_VERIFYING_KEYS_ARN",
            "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:verifying-AbCdEf".to_owned(),
        ),
        (
            "PAYMENT_GATEWAY_URL",
            "https://api.pg.example/v1/payments".to_owned(),
        ),
        (
            "PAYMENT_GATEWAY_SECRET_ARN",
            "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:pg-AbCdEf".to_owned(),
        ),
    ])
}

fn config(vars: &HashMap<&'static str, String>, key: TokenKey) -> cafe::Result<Config> {
    Config::from_vars(key, &|name| vars.get(name).cloned())
}

fn refusal(outcome: cafe::Result<Config>) -> String {
    match outcome {
        Ok(config) => panic!("accepted in production: {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_deployed_environment_is_production_and_has_a_real_gateway() {
    let config = config(&deployed_payment_create(), TokenKey::Verifies).expect("accepted");
    assert!(config.production, "on Lambda without CAFE_ENV: production");
    assert_eq!(config.check_gateway(GatewayUse::MovesMoney), Ok(()));
}

#[test]
fn a_function_that_moves_money_refuses_to_start_without_a_real_gateway() {
    for missing in ["PAYMENT_GATEWAY_URL", "PAYMENT_GATEWAY_SECRET_ARN"] {
        let mut vars = deployed_payment_create();
        vars.remove(missing);
        let config = config(&vars, TokenKey::Verifies).expect("read");
        let refused = config
            .check_gateway(GatewayUse::MovesMoney)
            .expect_err("the mock gateway in production");
        assert!(
            refused.to_string().contains("PAYMENT_GATEWAY_URL")
                && refused
                    .to_string()
                    .contains("mock gateway never runs in production"),
            "{missing}: {refused}"
        );
        // A function that moves no money starts (and gets a gateway that refuses every call).
        assert_eq!(config.check_gateway(GatewayUse::None), Ok(()));
    }
    // Outside production the mock stands in, as on the embedded default.
    let mut vars = deployed_payment_create();
    vars.remove("PAYMENT_GATEWAY_URL");
    vars.insert("CAFE_ENV", "development".into());
    let config = config(&vars, TokenKey::Verifies).expect("read");
    assert_eq!(config.check_gateway(GatewayUse::MovesMoney), Ok(()));
}

#[test]
fn a_gateway_without_tls_or_with_its_secret_in_a_plain_variable_is_refused() {
    let mut vars = deployed_payment_create();
    vars.insert("PAYMENT_GATEWAY_URL", "http://api.pg.example/v1".into());
    let refused = refusal(config(&vars, TokenKey::Verifies));
    assert!(refused.contains("https://"), "{refused}");

    let mut vars = deployed_payment_create();
    vars.insert(
        "PAYMENT_GATEWAY_SECRET_KEY",
        "sk_live_in_plain_sight".into(),
    );
    let refused = refusal(config(&vars, TokenKey::Verifies));
    assert!(refused.contains("PAYMENT_GATEWAY_SECRET_ARN"), "{refused}");
    assert!(
        !refused.contains("sk_live_in_plain_sight"),
        "the refusal never repeats the secret"
    );
}

#[test]
fn inline_token_keys_are_refused_in_production() {
    let keyset = SigningKeyset::generate(chrono::Utc::now());
    let jwks = serde_json::to_string(&keyset.public_jwks().expect("jwks")).expect("json");
    let mut vars = deployed_payment_create();
    vars.insert("TOKEN_VERIFYING_KEYS", jwks);
    let refused = refusal(config(&vars, TokenKey::Verifies));
    assert!(refused.contains("TOKEN_VERIFYING_KEYS_ARN"), "{refused}");

    let mut vars = deployed_payment_create();
    vars.insert("TOKEN_SIGNING_KEYS", keyset.to_json());
    let refused = refusal(config(&vars, TokenKey::Signs));
    assert!(refused.contains("TOKEN_SIGNING_KEYS_ARN"), "{refused}");
    // The same inline keys are fine for local runs.
    vars.insert("CAFE_ENV", "development".into());
    vars.insert("PAYMENT_GATEWAY_URL", "http://127.0.0.1:3100".into());
    config(&vars, TokenKey::Signs).expect("development accepts inline keys");
}

#[test]
fn the_development_keyset_is_refused_in_production_wherever_it_comes_from() {
    let development = SigningKeyset::development();
    assert!(development.holds_development_key());
    let refused = SigningKeyset::parse_for_production(&development.to_json())
        .expect_err("the development keyset from a secret");
    assert!(refused.to_string().contains("development key"), "{refused}");
    let jwks = development.public_jwks().expect("jwks");
    let json = serde_json::to_string(&jwks).expect("json");
    assert!(Jwks::parse_for_production(&json).is_err());
    // One development key among real ones is still refused.
    let mut mixed = SigningKeyset::generate(chrono::Utc::now())
        .public_jwks()
        .expect("jwks");
    mixed.keys.push(jwks.keys[0].clone());
    let json = serde_json::to_string(&mixed).expect("json");
    assert!(Jwks::parse_for_production(&json).is_err());
    // A generated keyset passes.
    let real = SigningKeyset::generate(chrono::Utc::now());
    assert!(!real.holds_development_key());
    SigningKeyset::parse_for_production(&real.to_json()).expect("a real keyset");
}

#[test]
fn the_lock_cache_is_never_reached_as_its_default_user() {
    let mut vars = deployed_payment_create();
    vars.remove("REDIS_AUTH_SECRET_ARN");
    let refused = refusal(config(&vars, TokenKey::Verifies));
    assert!(
        refused.contains("REDIS_AUTH_SECRET_ARN"),
        "the refusal names what is missing: {refused}"
    );
    // Outside production (the local server, the emulator run) Redis needs no user.
    vars.insert("CAFE_ENV", "development".to_owned());
    assert!(config(&vars, TokenKey::Verifies).is_ok());
}
