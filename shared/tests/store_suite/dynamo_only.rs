//! What only DynamoDB has: TTL attributes on the raw items, the table as created, cursors bound
//! to their member, and a dead endpoint answering 503 in bounded time.

use crate::harness::*;
use cafe::Error;
use cafe::auth::refresh::{hash_refresh_token, new_refresh_token};
use cafe::domain::EventType;
use cafe::store::dynamo::{DynamoStore, build_client, table};
use cafe::store::{IDEMPOTENCY_RETENTION, RefreshTokenRecord};
use std::time::{Duration, Instant};

/// A table made by `create_table` itself (with its stream), as the deployment tool makes it.
async fn store() -> DynamoStore {
    let client = build_client(
        Some(&cafe::testing::dynamodb_endpoint()),
        Duration::from_secs(10),
    )
    .await;
    let name = format!("cafe-spec-{}", id(t0()).to_lowercase());
    table::create_table(&client, &name)
        .await
        .expect("table created");
    DynamoStore::new(client, name, 400)
}

fn ttl_of(item: &cafe::store::dynamo::Attrs) -> i64 {
    item.get("ttl")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .expect("numeric ttl attribute")
}

#[tokio::test]
async fn history_outbox_refresh_and_idempotency_items_carry_a_ttl() {
    let b = Backend::dynamo().await;
    let dynamo = b.dynamo.clone().expect("dynamo");
    let m = member("kim@example.com", t0());
    let event = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
    b.store
        .create_member(&m, &password(), &event)
        .await
        .expect("created");

    let history = dynamo
        .raw_partition(&format!("MEMBER#{}", m.member_id))
        .await
        .expect("rows");
    let history_row = history
        .iter()
        .find(|r| {
            r.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with("HISTORY#"))
        })
        .expect("history row");
    assert_eq!(
        ttl_of(history_row),
        (t0() + chrono::Duration::days(400)).timestamp()
    );
    let profile = history
        .iter()
        .find(|r| r.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("PROFILE"))
        .expect("profile");
    assert!(!profile.contains_key("ttl"), "profiles never expire");

    let outbox = dynamo
        .raw_item(&format!("OUTBOX#{}", event.event_id), "EVENT")
        .await
        .expect("read")
        .expect("outbox row");
    assert_eq!(
        ttl_of(&outbox),
        (t0() + chrono::Duration::days(7)).timestamp()
    );

    let token = RefreshTokenRecord {
        token_hash: hash_refresh_token(&new_refresh_token()),
        member_id: m.member_id.clone(),
        family_id: id(t0()),
        issued_at: t0(),
        expires_at: t0() + DAY * 14,
        session_version: 0,
    };
    b.store.store_refresh_token(&token).await.expect("stored");
    let row = dynamo
        .raw_item(&format!("REFRESH#{}", token.token_hash), "REFRESH")
        .await
        .expect("read")
        .expect("token row");
    assert_eq!(ttl_of(&row), token.expires_at.timestamp());
    assert!(
        !row.values()
            .any(|v| v.as_s().is_ok_and(|s| s.contains("password")))
    );

    b.store
        .begin_idempotent(&m.member_id, "k1", "h1", t0())
        .await
        .expect("started");
    let record = dynamo
        .raw_item(&format!("IDEMPOTENCY#{}#k1", m.member_id), "IDEMPOTENCY")
        .await
        .expect("read")
        .expect("record");
    assert_eq!(ttl_of(&record), (t0() + IDEMPOTENCY_RETENTION).timestamp());
}

#[tokio::test]
async fn withdrawn_profiles_carry_the_sparse_index_keys_only_while_withdrawn() {
    let b = Backend::dynamo().await;
    let dynamo = b.dynamo.clone().expect("dynamo");
    let m = signed_up(&b, "kim@example.com", t0()).await;
    let pk = format!("MEMBER#{}", m.member_id);
    let profile = || async {
        dynamo
            .raw_item(&pk, "PROFILE")
            .await
            .expect("read")
            .expect("profile")
    };
    assert!(!profile().await.contains_key("wpk"));
    let event = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", t0());
    b.store
        .withdraw_member(&m.member_id, t0(), &event)
        .await
        .expect("withdrawn");
    let withdrawn = profile().await;
    assert_eq!(
        withdrawn.get("wpk").and_then(|v| v.as_s().ok()).cloned(),
        Some(format!(
            "WITHDRAWN#{}",
            cafe::store::withdrawn_shard(&m.member_id)
        ))
    );
    assert_eq!(
        withdrawn.get("wsk").and_then(|v| v.as_s().ok()).cloned(),
        Some(format!("2026-01-15T09:00:00.000Z#{}", m.member_id))
    );
    let restored = member_event(EventType::MemberRestored, &m.member_id, "SERVICE", t0());
    b.store
        .restore_member(&m.member_id, t0(), &restored)
        .await
        .expect("restored");
    let back = profile().await;
    assert!(!back.contains_key("wpk") && !back.contains_key("wsk"));
}

#[tokio::test]
async fn the_created_table_matches_the_spec() {
    let dynamo = store().await;
    let described = dynamo
        .client()
        .describe_table()
        .table_name(dynamo.table_name())
        .send()
        .await
        .expect("described")
        .table
        .expect("table");
    let spec = table::table_spec();
    let keys: Vec<(String, String)> = described
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (spec.partition_key.name.to_owned(), "HASH".to_owned()),
            (spec.sort_key.name.to_owned(), "RANGE".to_owned())
        ]
    );
    let mut indexes: Vec<(String, Vec<String>, String)> = described
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap_or_default().to_owned(),
                g.key_schema()
                    .iter()
                    .map(|k| k.attribute_name().to_owned())
                    .collect(),
                g.projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    indexes.sort();
    let mut expected: Vec<(String, Vec<String>, String)> = spec
        .global_secondary_indexes
        .iter()
        .map(|i| {
            (
                i.name.to_owned(),
                vec![i.partition_key.name.to_owned(), i.sort_key.name.to_owned()],
                match i.projection {
                    table::ProjectionSpec::All => "ALL".to_owned(),
                    table::ProjectionSpec::KeysOnly => "KEYS_ONLY".to_owned(),
                },
            )
        })
        .collect();
    expected.sort();
    assert_eq!(indexes, expected);
    let stream = described.stream_specification().expect("stream");
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type().map(|v| v.as_str()),
        Some(spec.stream_view_type)
    );
    assert_eq!(
        described
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some(spec.billing_mode)
    );
    let ttl = dynamo
        .client()
        .describe_time_to_live()
        .table_name(dynamo.table_name())
        .send()
        .await
        .expect("ttl")
        .time_to_live_description
        .expect("ttl description");
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert!(
        table::table_exists(dynamo.client(), dynamo.table_name())
            .await
            .expect("exists")
    );
    assert!(
        !table::table_exists(dynamo.client(), "no-such-table")
            .await
            .expect("answered")
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_answers_503_in_bounded_time() {
    let client = build_client(Some("http://127.0.0.1:9"), Duration::from_millis(800)).await;
    let dead = DynamoStore::new(client, "cafe".into(), 400);
    let started = Instant::now();
    assert_eq!(
        dead.get_item("x").await,
        Err(Error::Unavailable("dynamodb"))
    );
    let m = member("kim@example.com", t0());
    let event = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
    assert_eq!(
        dead.create_member(&m, &password(), &event).await,
        Err(Error::Unavailable("dynamodb"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// Orders paid before the order row kept a copy of its payments still list them: the page reads
/// such an order's partition. Orders paid since need no read beyond the index `Query`.
#[tokio::test]
async fn orders_paid_before_the_payments_copy_still_list_their_payments() {
    use crate::items_orders::{completion, listed, payment};
    use aws_sdk_dynamodb::types::AttributeValue;
    use cafe::domain::{OrderStatus, PaymentType};
    let b = Backend::dynamo().await;
    let dynamo = b.dynamo.clone().expect("dynamo");
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let order = placed(&b, "member-old", vec![line(&cola, 2)], t0()).await;
    let paid = completion(
        b.store.as_ref(),
        &order,
        vec![payment(3_000, PaymentType::Card)],
        t0(),
    )
    .await;
    b.store.complete_payment(&paid).await.expect("paid");
    let pk = format!("ORDER#{}", order.order_id);
    let row = dynamo.raw_item(&pk, "ORDER").await.expect("read");
    assert!(
        row.is_some_and(|r| r.contains_key("payments")),
        "the order row keeps a copy of its payments"
    );
    // As written before the copy existed.
    dynamo
        .client()
        .update_item()
        .table_name(dynamo.table_name())
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S("ORDER".into()))
        .update_expression("REMOVE payments")
        .send()
        .await
        .expect("copy removed");
    assert_eq!(
        listed(&b, "member-old").await,
        vec![(OrderStatus::Completed, paid.payments.clone())]
    );
}

/// A table from before the `items-catalog` index: its item rows lack the index keys and the
/// `CATALOG` partition lists them. The backfill gives every listed row the keys, once.
#[tokio::test]
async fn the_catalog_backfill_brings_items_from_before_the_index_into_the_list() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let b = Backend::dynamo().await;
    let dynamo = b.dynamo.clone().expect("dynamo");
    let listed_ids = || async {
        b.store
            .list_items()
            .await
            .expect("list")
            .into_iter()
            .map(|item| item.item_id)
            .collect::<Vec<_>>()
    };
    let new = stocked(&b, "Cola", 1_500, 10).await;
    let old_id = id(t0());
    let put = |attributes: Vec<(&str, AttributeValue)>| {
        let mut request = dynamo.client().put_item().table_name(dynamo.table_name());
        for (name, value) in attributes {
            request = request.item(name, value);
        }
        request.send()
    };
    let text = |v: &str| AttributeValue::S(v.to_owned());
    put(vec![
        ("pk", text(&format!("ITEM#{old_id}"))),
        ("sk", text("ITEM")),
        ("itemId", text(&old_id)),
        ("name", text("Old tea")),
        ("price", AttributeValue::N("2000".into())),
        ("stock", AttributeValue::N("5".into())),
    ])
    .await
    .expect("an item row as written before the index");
    put(vec![
        ("pk", text("CATALOG")),
        ("sk", text(&format!("ITEM#{old_id}"))),
        ("itemId", text(&old_id)),
    ])
    .await
    .expect("its catalog row");
    // A catalog row whose item is gone is skipped, not recreated.
    put(vec![
        ("pk", text("CATALOG")),
        ("sk", text("ITEM#gone")),
        ("itemId", text("gone")),
    ])
    .await
    .expect("a dangling catalog row");
    assert_eq!(listed_ids().await, vec![new.item_id.clone()]);

    assert_eq!(dynamo.backfill_catalog_index().await, Ok(1));
    let mut expected = vec![new.item_id.clone(), old_id.clone()];
    expected.sort();
    assert_eq!(listed_ids().await, expected);
    let old = b
        .store
        .get_item(&old_id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (old.name.as_str(), old.stock, old.active),
        ("Old tea", 5, true)
    );
    assert_eq!(
        dynamo.backfill_catalog_index().await,
        Ok(0),
        "a rerun changes nothing"
    );
    assert!(
        dynamo
            .raw_item("ITEM#gone", "ITEM")
            .await
            .expect("read")
            .is_none()
    );
}

/// Every item of the main table, as text: what its stream readers could ever see of it.
async fn main_table_text(store: &DynamoStore) -> String {
    let scanned = store
        .client()
        .scan()
        .table_name(store.table_name())
        .consistent_read(true)
        .send()
        .await
        .expect("scan");
    format!("{:?}", scanned.items())
}

async fn credentials_item(
    store: &DynamoStore,
    member_id: &str,
) -> Option<cafe::store::dynamo::Attrs> {
    store
        .client()
        .get_item()
        .table_name(store.credentials_table_name())
        .key("pk", s_value(&format!("MEMBER#{member_id}")))
        .consistent_read(true)
        .send()
        .await
        .expect("get credentials item")
        .item
}

fn s_value(text: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(text.to_owned())
}

/// The main table has a stream (`NEW_AND_OLD_IMAGES`) that three readers see; the password
/// must never be on it. Through a member's whole life (sign-up, log-in read, withdrawal,
/// restore, log-out everywhere, withdrawal, `END`) no item of the main table holds the hash;
/// the credentials table does, and `END` deletes it there too.
#[tokio::test]
async fn the_password_lives_in_the_credentials_table_only_and_ends_with_the_member() {
    let store = store().await;
    let marker = "$argon2id$v=19$m=8,t=1,p=1$bWFya2Vy$only-in-the-credentials-table";
    let m = member("apart@example.com", t0());
    let registered = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
    store
        .create_member(&m, &cafe::domain::StoredPassword::new(marker), &registered)
        .await
        .expect("created");
    let (found, stored) = store
        .find_member_for_log_in("apart@example.com")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.member_id, m.member_id);
    assert_eq!(stored.expect("a password").phc(), marker);
    assert_eq!(
        credentials_item(&store, &m.member_id)
            .await
            .and_then(|item| item.get("passwordHash").cloned()),
        Some(s_value(marker))
    );

    let withdrawn_at = t0() + chrono::Duration::hours(1);
    let withdrawn = member_event(
        EventType::MemberWithdrawn,
        &m.member_id,
        "WITHDRAWN",
        withdrawn_at,
    );
    store
        .withdraw_member(&m.member_id, withdrawn_at, &withdrawn)
        .await
        .expect("withdrawn");
    let restored_at = withdrawn_at + chrono::Duration::hours(1);
    let restored = member_event(
        EventType::MemberRestored,
        &m.member_id,
        "SERVICE",
        restored_at,
    );
    store
        .restore_member(&m.member_id, restored_at, &restored)
        .await
        .expect("restored");
    store.end_sessions(&m.member_id).await.expect("logged out");
    let again_at = restored_at + chrono::Duration::hours(1);
    let again = member_event(
        EventType::MemberWithdrawn,
        &m.member_id,
        "WITHDRAWN",
        again_at,
    );
    store
        .withdraw_member(&m.member_id, again_at, &again)
        .await
        .expect("withdrawn again");
    let text = main_table_text(&store).await;
    assert!(
        text.contains(&m.member_id),
        "the scan sees the member's rows"
    );
    assert!(
        !text.contains("argon2"),
        "a password hash on the main table: {text}"
    );
    assert!(!text.contains("passwordHash"), "{text}");

    let end_at = again_at + chrono::Duration::days(30);
    let ended = member_event(EventType::MemberExpired, &m.member_id, "END", end_at);
    assert!(
        store
            .end_member(&m.member_id, again_at, end_at, &ended)
            .await
            .expect("end")
    );
    assert_eq!(credentials_item(&store, &m.member_id).await, None);
    assert!(
        store
            .find_member_for_log_in("apart@example.com")
            .await
            .expect("read")
            .is_none()
    );
}

/// A profile written before passwords had a table of their own keeps its hash until the
/// backfill moves it: log-in reads it there meanwhile, the backfill moves it (or only drops the
/// profile's copy when the credentials table already has one), and a rerun does nothing.
#[tokio::test]
async fn a_profile_from_before_logs_in_and_the_backfill_moves_its_password() {
    let store = store().await;
    let legacy_hash = "$argon2id$v=19$m=8,t=1,p=1$bGVnYWN5$from-before";
    let mut members = Vec::new();
    for email in ["legacy@example.com", "both@example.com"] {
        let m = member(email, t0());
        let registered = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
        store
            .create_member(&m, &password(), &registered)
            .await
            .expect("created");
        // As written before: the hash on the profile.
        store
            .client()
            .update_item()
            .table_name(store.table_name())
            .key("pk", s_value(&format!("MEMBER#{}", m.member_id)))
            .key("sk", s_value("PROFILE"))
            .update_expression("SET passwordHash = :hash")
            .expression_attribute_values(":hash", s_value(legacy_hash))
            .send()
            .await
            .expect("legacy profile");
        members.push(m);
    }
    // The first has no credentials item at all, as before the table existed.
    store
        .client()
        .delete_item()
        .table_name(store.credentials_table_name())
        .key("pk", s_value(&format!("MEMBER#{}", members[0].member_id)))
        .send()
        .await
        .expect("no credentials item");
    let log_in_read = |email: &'static str| {
        let store = store.clone();
        async move {
            store
                .find_member_for_log_in(email)
                .await
                .expect("read")
                .expect("found")
                .1
                .expect("a password")
        }
    };
    assert_eq!(log_in_read("legacy@example.com").await.phc(), legacy_hash);
    // Where both exist, the credentials table is the member's password.
    assert_eq!(log_in_read("both@example.com").await, password());

    let done = store.backfill_passwords().await.expect("backfill");
    assert_eq!((done.moved, done.already_apart, done.skipped), (1, 1, 0));
    assert!(!main_table_text(&store).await.contains("argon2"));
    assert_eq!(log_in_read("legacy@example.com").await.phc(), legacy_hash);
    assert_eq!(log_in_read("both@example.com").await, password());
    let rerun = store.backfill_passwords().await.expect("rerun");
    assert_eq!(rerun, cafe::store::dynamo::PasswordBackfill::default());
}
