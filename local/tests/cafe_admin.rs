//! `cafe-admin`, the only way to make the first admin, run as an operator would against moto.

use aws_sdk_dynamodb::types::AttributeValue::S;
use cafe::domain::{DomainEvent, EventType, Gender, Member, MemberStatus, Role};
use cafe::store::MemberStore;
use cafe::store::dynamo::testing::fresh_store;
use std::process::Command;

fn member(email: &str) -> Member {
    let now = chrono::Utc::now();
    Member {
        member_id: cafe::ids::new_id(now),
        name: "Owner".into(),
        email: email.into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Female),
        birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 1),
        status: MemberStatus::Service,
        role: Role::Customer,
        withdrawn_at: None,
        created_at: now,
        session_version: 0,
    }
}

#[test]
fn cafe_admin_grants_a_role_and_refuses_what_it_cannot_do() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let endpoint = cafe::testing::dynamodb_endpoint();
    let store = runtime.block_on(fresh_store(&endpoint));
    let owner = member("owner@cafe.example");
    runtime
        .block_on(store.create_member(
            &owner,
            &cafe::domain::StoredPassword::new("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"),
            &DomainEvent::member(
                EventType::MemberRegistered,
                &owner.member_id,
                "SERVICE",
                owner.created_at,
            ),
        ))
        .expect("signed up");
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_cafe-admin"))
            .args(args)
            .env("DYNAMODB_ENDPOINT", &endpoint)
            .env("TABLE_NAME", store.table_name())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("cafe-admin runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let role_of = |id: &str| {
        runtime
            .block_on(store.get_member(id))
            .expect("read")
            .expect("member")
            .role
    };

    // By email, in any case.
    let (ok, out, err) = run(&["grant", "Owner@Cafe.example", "ADMIN"]);
    assert!(ok && out.contains("is now ADMIN"), "{out}{err}");
    assert_eq!(role_of(&owner.member_id), Role::Admin);
    // By id.
    let (ok, _, err) = run(&["grant", &owner.member_id, "STAFF"]);
    assert!(ok, "{err}");
    assert_eq!(role_of(&owner.member_id), Role::Staff);

    let (ok, _, err) = run(&["grant", "owner@cafe.example", "OWNER"]);
    assert!(
        !ok && err.contains("unknown role") && err.contains("usage"),
        "{err}"
    );
    let (ok, _, err) = run(&["grant", "nobody@cafe.example", "ADMIN"]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = run(&["promote"]);
    assert!(!ok && err.contains("usage"), "{err}");
    // The catalogue backfill on a table whose items all carry the index keys: nothing to do.
    let (ok, out, err) = run(&["backfill-catalog"]);
    assert!(ok && out.starts_with("0 item row(s)"), "{out}{err}");

    // A profile from before passwords had a table of their own: the backfill moves its hash.
    let legacy = "$argon2id$v=19$m=8,t=1,p=1$bGVnYWN5$from-before";
    runtime
        .block_on(
            store
                .client()
                .delete_item()
                .table_name(store.credentials_table_name())
                .key("pk", S(format!("MEMBER#{}", owner.member_id)))
                .send(),
        )
        .expect("no credentials item, as before");
    runtime
        .block_on(
            store
                .client()
                .update_item()
                .table_name(store.table_name())
                .key("pk", S(format!("MEMBER#{}", owner.member_id)))
                .key("sk", S("PROFILE".into()))
                .update_expression("SET passwordHash = :hash")
                .expression_attribute_values(":hash", S(legacy.into()))
                .send(),
        )
        .expect("the hash on the profile, as before");
    let (ok, out, err) = run(&["backfill-passwords"]);
    assert!(ok && out.starts_with("1 password(s) moved"), "{out}{err}");
    let (_, password) = runtime
        .block_on(store.find_member_for_log_in("owner@cafe.example"))
        .expect("read")
        .expect("found");
    assert_eq!(password.expect("moved").phc(), legacy);
    let profile = runtime
        .block_on(store.raw_item(&format!("MEMBER#{}", owner.member_id), "PROFILE"))
        .expect("read")
        .expect("profile");
    assert!(!profile.contains_key("passwordHash"));
    let (ok, out, err) = run(&["backfill-passwords"]);
    assert!(ok && out.starts_with("0 password(s) moved"), "{out}{err}");
    assert_eq!(
        role_of(&owner.member_id),
        Role::Staff,
        "refusals change nothing"
    );
}
