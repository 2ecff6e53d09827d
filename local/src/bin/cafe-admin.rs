//! Grants a role from outside the API: how the first admin is made (no endpoint can), and how
//! an admin locked out is recovered. Writes the same role change and `MemberRoleChanged` event an
//! admin's `PUT /admin/members/{memberId}/role` does, straight to the table.
//!
//!   cafe-admin grant <email or member id> <CUSTOMER|STAFF|ADMIN>
//!
//! `TABLE_NAME` (default `cafe`), `DYNAMODB_ENDPOINT` (unset = AWS), plus the usual AWS
//! credentials and region variables (the caller needs GetItem, Query, UpdateItem and PutItem on
//! the table). The member must have signed up and be in service; they log in again (or refresh)
//! to get a token carrying the role.

use cafe::domain::Role;
use cafe::store::dynamo::{DynamoStore, build_client};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: cafe-admin grant <email or member id> <CUSTOMER|STAFF|ADMIN>";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn run(args: &[String]) -> Result<String, String> {
    let (member, role) = match args {
        [command, member, role] if command == "grant" => (member, role),
        _ => return Err(USAGE.into()),
    };
    let role = Role::parse(role).ok_or_else(|| format!("unknown role {role:?}\n{USAGE}"))?;
    let table_name = var("TABLE_NAME").unwrap_or_else(|| "cafe".into());
    let endpoint = var("DYNAMODB_ENDPOINT");
    let client = build_client(endpoint.as_deref(), Duration::from_secs(10)).await;
    let store = DynamoStore::new(client, table_name.clone(), 400);
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
