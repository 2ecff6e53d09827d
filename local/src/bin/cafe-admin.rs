//! Operator commands that no endpoint offers, straight to the table.
//!
//!   cafe-admin grant <email or member id> <CUSTOMER|STAFF|ADMIN>
//!   cafe-admin backfill-catalog
//!   cafe-admin backfill-passwords
//!
//! `grant` is how the first admin is made (no endpoint can), and how an admin locked out is
//! recovered: it writes the same role change and `MemberRoleChanged` event an admin's
//! `PUT /admin/members/{memberId}/role` does. The member must have signed up and be in service;
//! they log in again (or refresh) to get a token carrying the role.
//!
//! `backfill-catalog` gives the item rows of a table from before the `items-catalog` index its
//! keys, so that `GET /items` (one `Query` of that index) lists them: run it once after the
//! deploy that adds the index (`docs/deploy.md`). Safe to rerun.
//!
//! `backfill-passwords` moves the password hash of member profiles written before passwords
//! had a table of their own into the credentials table (and off the profile, so the main
//! table's stream no longer carries it): run it once after the deploy that adds
//! `CredentialsTable`. Log-in reads a profile's hash until then. Safe to rerun.
//!
//! `TABLE_NAME` (default `cafe`), `CREDENTIALS_TABLE_NAME` (default `<TABLE_NAME>-credentials`;
//! the stack's `CredentialsTableName` output), `DYNAMODB_ENDPOINT` (unset = AWS), plus the usual
//! AWS credentials and region variables (the caller needs GetItem, Query, Scan, UpdateItem and
//! PutItem on the table, PutItem on the credentials table).

use cafe::domain::Role;
use cafe::store::dynamo::{DynamoStore, build_client};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: cafe-admin grant <email or member id> <CUSTOMER|STAFF|ADMIN>\n       cafe-admin backfill-catalog\n       cafe-admin backfill-passwords";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn store() -> (DynamoStore, String) {
    let table_name = var("TABLE_NAME").unwrap_or_else(|| "cafe".into());
    let endpoint = var("DYNAMODB_ENDPOINT");
    let client = build_client(endpoint.as_deref(), Duration::from_secs(10)).await;
    let store = DynamoStore::new(client, table_name.clone(), 400);
    let store = match var("CREDENTIALS_TABLE_NAME") {
        Some(name) => store.with_credentials_table(name),
        None => store,
    };
    (store, table_name)
}

async fn run(args: &[String]) -> Result<String, String> {
    match args {
        [command, member, role] if command == "grant" => grant(member, role).await,
        [command] if command == "backfill-catalog" => backfill_catalog().await,
        [command] if command == "backfill-passwords" => backfill_passwords().await,
        _ => Err(USAGE.into()),
    }
}

async fn backfill_catalog() -> Result<String, String> {
    let (store, table_name) = store().await;
    let updated = store
        .backfill_catalog_index()
        .await
        .map_err(|e| format!("{e}"))?;
    Ok(format!(
        "{updated} item row(s) given the items-catalog keys (table {table_name})"
    ))
}

async fn backfill_passwords() -> Result<String, String> {
    let (store, table_name) = store().await;
    let done = store
        .backfill_passwords()
        .await
        .map_err(|e| format!("{e}"))?;
    Ok(format!(
        "{} password(s) moved to {}, {} profile copy(ies) dropped (already there), {} changed meanwhile and left for a rerun (table {table_name})",
        done.moved,
        store.credentials_table_name(),
        done.already_apart,
        done.skipped
    ))
}

async fn grant(member: &str, role: &str) -> Result<String, String> {
    let role = Role::parse(role).ok_or_else(|| format!("unknown role {role:?}\n{USAGE}"))?;
    let (store, table_name) = store().await;
    let granted =
        cafe::services::staff::grant_role_offline(&store, member, role, chrono::Utc::now())
            .await
            .map_err(|e| match e {
                cafe::Error::NotInService => format!("member {member} is not in service"),
                other => format!("{other}"),
            })?;
    Ok(format!(
        "member {} is now {} (table {table_name}); they log in again to use it",
        granted.member_id,
        role.as_str()
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cafe-admin: {e}");
            ExitCode::FAILURE
        }
    }
}
