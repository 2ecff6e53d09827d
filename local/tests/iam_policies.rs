//! IAM proven from the calls themselves (against moto and Redis, started by `scripts/test.sh`).
//!
//! Every function runs as it is deployed: its own app, built by `App::on_aws` from the
//! environment `template.yaml` gives it (its table, secret, bus and lock cache replaced by the
//! test's), with its own SDK clients, each reporting to a `CallRecorder`. A scenario drives every
//! branch that makes a different AWS call (sign-up and a taken email, log-in right and wrong,
//! refresh and reuse, paid and cancelled orders listed, payments with and without an
//! `Idempotency-Key`, a gateway failure that releases the key, both kinds of cancel, withdraw and
//! restore, a due member ended by the expiry job, the stream publisher). Then each function's
//! recorded calls are held to its policy in the template, both ways: a call the policy does not
//! grant fails, and so does a grant no call used. Breaking a policy on purpose (removing any one
//! grant, adding an unused one) must make the check fail.

mod template;

use cafe::App;
use cafe::aws::{Aws, AwsResource, CallRecorder};
use cafe::config::{Config, TokenKey};
use cafe::domain::{DomainEvent, EventType, Gender, Member, MemberStatus, Role};
use cafe::gateway::MockGateway;
use cafe::routes::{RouteMatch, match_route};
use cafe::store::MemberStore;
use cafe::store::dynamo::{DynamoStore, table};
use cafe_local::testing::{PASSWORD, request, sign_up_body, unique_email};
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use template::{FUNCTIONS, Grant, grants_of};

/// The stream publisher reads only its bus (no `App`).
const PUBLISHER: &str = "events-publisher";

/// The resources of the stack, made on moto for this run: logical id → concrete name.
struct Stack {
    endpoint: String,
    redis_url: String,
    /// Logical id (`Table`, `TokenSigningKeys`, `EventBus`) → the name or ARN the code is given.
    names: BTreeMap<String, String>,
}

/// The last byte of each sign-up's source address.
static NEXT_ADDRESS: AtomicU8 = AtomicU8::new(1);

/// Makes `user` on the test Redis with the template's `LockCacheUser` AccessString: only the
/// commands and keys the deployed functions are granted on the cache.
async fn lock_cache_user(user: &str, password: &str) {
    let template = template::template();
    let access = template::string_at(
        &template,
        &["Resources", "LockCacheUser", "Properties", "AccessString"],
    )
    .expect("LockCacheUser's AccessString in template.yaml");
    let client = redis::Client::open(cafe::testing::redis_url()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis");
    let mut command = redis::cmd("ACL");
    command
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg(format!(">{password}"));
    for rule in access.split_whitespace() {
        command.arg(rule);
    }
    let _: () = command
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("ACL SETUSER with the template's AccessString: {e}"));
}

impl Stack {
    async fn create() -> Self {
        let endpoint = cafe::testing::dynamodb_endpoint();
        let aws = Aws::load(Some(&endpoint), std::time::Duration::from_secs(10)).await;
        let suffix = ulid::Ulid::new().to_string().to_lowercase();
        let table_name = format!("cafe-iam-{suffix}");
        table::create_table_with(&aws.dynamodb(), &table_name, false)
            .await
            .expect("table on moto");
        let keyset = cafe::auth::SigningKeyset::generate(chrono::Utc::now());
        let jwks = cafe::auth::rotation::jwks_json(&keyset.public_jwks().expect("jwks"))
            .expect("jwks json");
        // The lock cache's user, made on the test Redis with the template's AccessString, so the
        // whole scenario runs on Redis as the deployed functions would (ElastiCache RBAC).
        let redis_user = format!("cafe-iam-{suffix}");
        let redis_password = ulid::Ulid::new().to_string();
        lock_cache_user(&redis_user, &redis_password).await;
        let mut secret_arns = Vec::new();
        for (name, value) in [
            ("signing", keyset.to_json()),
            ("verifying", jwks),
            ("gateway", "sk_test_iam".to_owned()),
            (
                "redis",
                json!({"username": redis_user, "password": redis_password}).to_string(),
            ),
        ] {
            let secret = aws
                .secrets_manager()
                .create_secret()
                .name(format!("cafe-iam-{name}-{suffix}"))
                .secret_string(value)
                .send()
                .await
                .expect("secret on moto");
            secret_arns.push(secret.arn().expect("secret ARN").to_owned());
        }
        let bus = format!("cafe-iam-bus-{suffix}");
        aws.eventbridge()
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("bus on moto");
        let names = BTreeMap::from([
            (
                "CredentialsTable".to_owned(),
                table::credentials_table_for(&table_name),
            ),
            ("Table".to_owned(), table_name),
            ("TokenSigningKeys".to_owned(), secret_arns[0].clone()),
            ("TokenVerifyingKeys".to_owned(), secret_arns[1].clone()),
            ("PaymentGatewaySecretKey".to_owned(), secret_arns[2].clone()),
            ("LockCacheCredentials".to_owned(), secret_arns[3].clone()),
            ("EventBus".to_owned(), bus),
        ]);
        Self {
            endpoint,
            redis_url: cafe::testing::redis_url(),
            names,
        }
    }

    /// The value the template's environment entry takes in this stack.
    fn resolve(&self, name: &str, value: &Yaml) -> Result<String, String> {
        match value {
            Yaml::String(text) => Ok(text.clone()),
            Yaml::Number(number) => Ok(number.to_string()),
            Yaml::Bool(flag) => Ok(flag.to_string()),
            other => {
                if let Some(logical) = template::string_at(other, &["Ref"]) {
                    return match logical.as_str() {
                        "HistoryRetentionDays" => Ok("400".into()),
                        "LogLevel" => Ok("info".into()),
                        // Never called: the scenario's gateway is the mock put in its place.
                        "PaymentGatewayUrl" => Ok("https://pg.cafe-iam.invalid".into()),
                        // The metrics' `Service` dimension.
                        "AWS::StackName" => Ok("cafe-iam".into()),
                        _ => {
                            self.names.get(&logical).cloned().ok_or_else(|| {
                                format!("{name}: !Ref {logical} is not in the stack")
                            })
                        }
                    };
                }
                match template::string_at(other, &["Fn::Sub"]) {
                    // The lock cache's TLS endpoint; here the test's Redis.
                    Some(text) if text.contains("${LockCache.") => Ok(self.redis_url.clone()),
                    // The live WebSocket API's URLs: the scenario's sender posts to a stub.
                    Some(text) if text.contains("${LiveApi}") => {
                        Ok("https://live.cafe-iam.invalid/live".into())
                    }
                    _ => Err(format!("{name}: cannot resolve {other:?}")),
                }
            }
        }
    }

    /// A function's environment on Lambda: the template's, resolved, plus what Lambda sets;
    /// then the test's overrides (the moto endpoint, cheap Argon2).
    fn environment(&self, template: &Yaml, function: &str) -> BTreeMap<String, String> {
        let functions = template::functions(template);
        let (_, resource) = functions
            .get(function)
            .unwrap_or_else(|| panic!("{function} is not in template.yaml"));
        let mut env = BTreeMap::new();
        for (name, value) in template::environment(template, resource) {
            let resolved = self
                .resolve(&name, &value)
                .unwrap_or_else(|e| panic!("{e}"));
            env.insert(name, resolved);
        }
        env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), function.into());
        env.insert("DYNAMODB_ENDPOINT".into(), self.endpoint.clone());
        for (name, value) in [
            ("ARGON2_MEMORY_KIB", "8"),
            ("ARGON2_ITERATIONS", "1"),
            ("ARGON2_PARALLELISM", "1"),
            // A short refresh grace, so the scenario reaches the revocation after it.
            ("REFRESH_REUSE_GRACE_SECONDS", "1"),
            // One member pays more orders than the floor's default allows open at once.
            ("SHOP_MAX_OPEN_PER_MEMBER", "100"),
        ] {
            env.insert(name.into(), value.into());
        }
        env
    }

    /// The recorded resource as the template names it (`table/Table`, `secret/TokenSigningKeys` …).
    fn canonical(&self, resource: &AwsResource) -> String {
        let logical = |name: &str| {
            self.names
                .iter()
                .find(|(_, concrete)| concrete.as_str() == name)
                .map_or_else(|| format!("<not in the stack: {name}>"), |(l, _)| l.clone())
        };
        match resource {
            AwsResource::Table(name) => format!("table/{}", logical(name)),
            AwsResource::Index { table, index } => {
                format!("table/{}/index/{index}", logical(table))
            }
            AwsResource::Secret(arn) => format!("secret/{}", logical(arn)),
            AwsResource::EventBus(name) => format!("event-bus/{}", logical(name)),
            // The sender's management client is built for the `live` stage of `LiveApi`.
            AwsResource::Connections(method) => {
                format!("execute-api/LiveApi/live/{method}/@connections/a-connection")
            }
            AwsResource::Unrecognised { service, operation } => {
                format!("<unrecognised call {service}:{operation}>")
            }
        }
    }
}

/// One deployed function: its app and what it called.
struct Deployed {
    app: App,
    recorder: CallRecorder,
}

async fn deploy(stack: &Stack, template: &Yaml, function: &str, key: TokenKey) -> Deployed {
    let usage = template::gateway_use(function);
    let env = stack.environment(template, function);
    let config = Config::from_vars(key, &|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("{function}: its template environment is refused: {e}"));
    let recorder = CallRecorder::new();
    let aws = Aws::load(
        config.dynamodb_endpoint.as_deref(),
        std::time::Duration::from_secs(10),
    )
    .await
    .with_recorder(recorder.clone());
    let app = App::on_aws_for(config, &aws, usage)
        .await
        .unwrap_or_else(|e| panic!("{function}: init failed: {e}"));
    Deployed { app, recorder }
}

struct Cafe {
    functions: BTreeMap<&'static str, Deployed>,
    gateway: Arc<MockGateway>,
}

impl Cafe {
    /// Routes like API Gateway: to the function of the route, on that function's app.
    async fn call(&self, req: lambda_http::Request) -> (u16, Value) {
        let function = match match_route(req.method().as_str(), req.uri().path()) {
            RouteMatch::Found { route, .. } => route.function,
            other => panic!("no route for {} {}: {other:?}", req.method(), req.uri()),
        };
        let deployed = &self.functions[function];
        let response = cafe_local::dispatch(function, req, &deployed.app).await;
        let status = response.status().as_u16();
        (status, cafe_local::testing::json_of(&response))
    }

    async fn expect(&self, req: lambda_http::Request, status: u16) -> Value {
        let what = format!("{} {}", req.method(), req.uri().path());
        let (got, body) = self.call(req).await;
        assert_eq!(got, status, "{what}: {body}");
        body
    }

    async fn sign_up(&self) -> (String, String, String, String) {
        let email = unique_email();
        let body = self
            .expect(
                request("POST", "/member")
                    .json(&sign_up_body(&email))
                    // As API Gateway gives it: the sign-up throttle's Redis call runs (one
                    // address per member, far below its limit).
                    .from_ip(&format!(
                        "198.51.100.{}",
                        NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed)
                    ))
                    .build(),
                201,
            )
            .await;
        let field = |name: &str| body["result"][name].as_str().expect(name).to_owned();
        (
            field("memberId"),
            field("accessToken"),
            field("refreshToken"),
            email,
        )
    }

    async fn log_in(&self, email: &str) -> String {
        let body = self
            .expect(
                request("POST", "/auth/login")
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .build(),
                200,
            )
            .await;
        body["result"]["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned()
    }

    async fn order(&self, access: &str, item: &str) -> String {
        let body = self
            .expect(
                request("POST", "/order")
                    .bearer(access)
                    .json(&json!({"items": [{"itemId": item, "quantity": 1}]}))
                    .build(),
                201,
            )
            .await;
        body["result"]["orderId"]
            .as_str()
            .expect("orderId")
            .to_owned()
    }

    async fn pay(&self, access: &str, order_id: &str, amount: i64, key: Option<&str>) -> u16 {
        let mut req = request("POST", "/payment")
            .bearer(access)
            .json(&json!({"orderId": order_id, "payments": [{"amount": amount, "type": "CARD"}]}));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        self.call(req.build()).await.0
    }
}

const COLA: &str = "01JC0FFEE00000000000000C01";
const BOOK: &str = "01JC0FFEE00000000000000B02";

/// Every branch that makes a different AWS call, each answer checked so the branch really ran.
async fn scenario(cafe: &Cafe, fixtures: &DynamoStore, stack: &Stack) {
    let (member, access, refresh, email) = cafe.sign_up().await;
    let taken = cafe
        .expect(
            request("POST", "/member")
                .json(&sign_up_body(&email))
                .build(),
            400,
        )
        .await;
    assert_eq!(taken["error"]["code"], "400ME000");

    let login = |password: &str| {
        request("POST", "/auth/login")
            .json(&json!({"email": email, "password": password}))
            .build()
    };
    cafe.expect(login(PASSWORD), 200).await;
    cafe.expect(login("a wrong password"), 401).await;
    cafe.expect(
        request("POST", "/auth/login")
            .json(&json!({"email": unique_email(), "password": PASSWORD}))
            .build(),
        401,
    )
    .await;

    let refresh_with = |token: &str| {
        request("POST", "/auth/refresh")
            .json(&json!({"refreshToken": token}))
            .build()
    };
    let rotated = cafe.expect(refresh_with(&refresh), 200).await;
    // Presented again within the grace window: the same pair (reads the family's marker).
    let replayed = cafe.expect(refresh_with(&refresh), 200).await;
    assert_eq!(
        replayed, rotated,
        "a replay within the grace window answers the same pair"
    );
    // After the window (1 s here): refused, and its family revoked (the successor too).
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    cafe.expect(refresh_with(&refresh), 401).await;
    let successor = rotated["result"]["refreshToken"].as_str().expect("token");
    cafe.expect(refresh_with(successor), 401).await;

    // Log-out: the token read, its family revoked; everywhere also ends every session (another
    // member's, so this one's tokens stay for the scenario below).
    let logout = |token: &str, everywhere: bool| {
        request("POST", "/auth/logout")
            .json(&json!({"refreshToken": token, "everywhere": everywhere}))
            .build()
    };
    let (_, leaving_access, leaving_refresh, _) = cafe.sign_up().await;
    cafe.expect(logout(&leaving_refresh, true), 200).await;
    cafe.expect(refresh_with(&leaving_refresh), 401).await;
    cafe.expect(
        request("GET", "/orders").bearer(&leaving_access).build(),
        401,
    )
    .await;
    cafe.expect(logout(successor, false), 200).await;

    cafe.expect(
        request("GET", &format!("/member/{member}"))
            .bearer(&access)
            .build(),
        200,
    )
    .await;
    // Another member's profile: 403 once the caller is authenticated, the one GetItem member-get
    // makes (its own profile comes with its history, in one Query).
    cafe.expect(
        request("GET", "/member/01JC0FFEE0000000000000NONE")
            .bearer(&access)
            .build(),
        403,
    )
    .await;
    cafe.expect(request("GET", "/items").build(), 200).await;
    let jwks = cafe
        .expect(request("GET", "/.well-known/jwks.json").build(), 200)
        .await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "{jwks}");
    cafe.expect(request("GET", &format!("/items/{COLA}")).build(), 200)
        .await;
    // An id far past DynamoDB's key size: 404 in the contract's format, never a 500.
    let long = format!("/items/{}", "x".repeat(4096));
    let missing = cafe.expect(request("GET", &long).build(), 404).await;
    assert_eq!(missing["error"]["code"], "404CO000");

    // A refused body reads the member on its own (401/403 come before 400): the only GetItem
    // order-create and payment-create make, as the member is otherwise read with the items.
    for path in ["/order", "/payment"] {
        let refused = cafe
            .expect(
                request("POST", path)
                    .bearer(&access)
                    .json(&json!({"unknown": true}))
                    .build(),
                400,
            )
            .await;
        assert_eq!(refused["error"]["code"], "400CO000");
    }
    let paid_with_key = cafe.order(&access, COLA).await;
    let paid_without_key = cafe.order(&access, BOOK).await;
    let to_cancel_pending = cafe.order(&access, COLA).await;
    let failed_payment = cafe.order(&access, COLA).await;
    assert_eq!(
        cafe.pay(&access, &paid_with_key, 1_500, Some("iam-1"))
            .await,
        200
    );
    // The replay: the stored answer, no second charge.
    assert_eq!(
        cafe.pay(&access, &paid_with_key, 1_500, Some("iam-1"))
            .await,
        200
    );
    assert_eq!(
        cafe.pay(&access, &paid_without_key, 25_000, None).await,
        200
    );
    // A gateway failure under a key: nothing charged, the key released for the retry.
    cafe.gateway.set_config(cafe::config::GatewayConfig {
        failure_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(
        cafe.pay(&access, &failed_payment, 1_500, Some("iam-2"))
            .await,
        502
    );
    cafe.gateway
        .set_config(cafe::config::GatewayConfig::default());
    assert_eq!(
        cafe.pay(&access, &failed_payment, 1_500, Some("iam-2"))
            .await,
        200
    );

    cafe.expect(
        request("GET", &format!("/order/{paid_with_key}"))
            .bearer(&access)
            .build(),
        200,
    )
    .await;
    cafe.expect(
        request("DELETE", &format!("/order/{to_cancel_pending}/cancel"))
            .bearer(&access)
            .build(),
        200,
    )
    .await;
    cafe.expect(
        request("DELETE", &format!("/order/{paid_without_key}/cancel"))
            .bearer(&access)
            .build(),
        200,
    )
    .await;
    // Paid and cancelled orders in the list, their payments with them. One is made as an order
    // paid before the order row kept a copy of its payments: its partition is read (the Query
    // on the table order-list is granted for).
    fixtures
        .client()
        .update_item()
        .table_name(fixtures.table_name())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ORDER#{paid_with_key}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER".into()),
        )
        .update_expression("REMOVE payments")
        .send()
        .await
        .expect("the copy taken away");
    let listed = cafe
        .expect(request("GET", "/orders").bearer(&access).build(), 200)
        .await;
    let orders = listed["result"]["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 4, "{listed}");
    for paid in [&paid_with_key, &paid_without_key] {
        assert!(
            orders.iter().any(|o| o["orderId"] == paid.as_str()
                && o["payments"].as_array().is_some_and(|p| p.len() == 1)),
            "{paid}: {listed}"
        );
    }

    // Answers lost at the gateway: a charge the reconciler completes (storing the key's answer),
    // and a split payment cut after its first part that it refunds (releasing the key).
    let completed_later = cafe.order(&access, COLA).await;
    let refunded_later = cafe.order(&access, COLA).await;
    cafe.gateway.set_config(cafe::config::GatewayConfig {
        drop_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(
        cafe.pay(&access, &completed_later, 1_500, Some("iam-3"))
            .await,
        503
    );
    let split = request("POST", "/payment")
        .bearer(&access)
        .header("idempotency-key", "iam-4")
        .json(&json!({"orderId": refunded_later, "payments": [
            {"amount": 1_000, "type": "CARD"}, {"amount": 500, "type": "POINT"}]}))
        .build();
    assert_eq!(cafe.call(split).await.0, 503);
    cafe.gateway
        .set_config(cafe::config::GatewayConfig::default());
    // Past the attempts' deadlines (the handler refuses a `now` in production, so the service
    // is run at that instant directly, on the reconciler's own app).
    let later = Utc::now() + Duration::minutes(10);
    let summary = cafe::services::reconcile::run_reconcile(
        &cafe.functions["payment-reconcile"].app,
        later,
        &cafe::services::reconcile::ReconcileOptions::default(),
    )
    .await
    .expect("reconciliation");
    assert_eq!(
        (summary.completed, summary.refunded, summary.failed),
        (1, 1, 0),
        "{summary:?}"
    );

    // The staff side: an admin made as `cafe-admin` makes one (straight to the table), who
    // promotes a member to STAFF; the staff member edits the catalogue and fulfils an order.
    let (admin, _, _, admin_email) = cafe.sign_up().await;
    cafe::services::staff::grant_role_offline(fixtures, &admin, Role::Admin, Utc::now())
        .await
        .expect("first admin");
    let admin_access = cafe.log_in(&admin_email).await;
    let (clerk, _, _, clerk_email) = cafe.sign_up().await;
    cafe.expect(
        request("PUT", &format!("/admin/members/{clerk}/role"))
            .bearer(&admin_access)
            .json(&json!({"role": "STAFF"}))
            .build(),
        200,
    )
    .await;
    let clerk_access = cafe.log_in(&clerk_email).await;
    let created = cafe
        .expect(
            request("POST", "/admin/items")
                .bearer(&clerk_access)
                .json(&json!({"name": "Latte", "price": 4_500, "stock": 30}))
                .build(),
            201,
        )
        .await;
    let latte = created["result"]["itemId"].as_str().expect("itemId");
    cafe.expect(
        request("PATCH", &format!("/admin/items/{latte}"))
            .bearer(&clerk_access)
            .json(&json!({"version": 0, "price": 4_800}))
            .build(),
        200,
    )
    .await;
    cafe.expect(
        request("POST", &format!("/admin/items/{latte}/stock"))
            .bearer(&clerk_access)
            .json(&json!({"mode": "ADD", "quantity": 10, "reason": "delivery", "version": 1}))
            .build(),
        200,
    )
    .await;
    let catalogue = cafe
        .expect(
            request("GET", "/admin/items").bearer(&clerk_access).build(),
            200,
        )
        .await;
    assert!(
        catalogue["result"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["itemId"] == latte)),
        "{catalogue}"
    );
    let queue = cafe
        .expect(
            request("GET", "/admin/orders")
                .query("status", "COMPLETED")
                .bearer(&clerk_access)
                .build(),
            200,
        )
        .await;
    assert!(
        queue["result"]["orders"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["orderId"] == paid_with_key.as_str())),
        "{queue}"
    );
    cafe.expect(
        request("PUT", &format!("/admin/orders/{paid_with_key}/status"))
            .bearer(&clerk_access)
            .json(&json!({"status": "PREPARING"}))
            .build(),
        200,
    )
    .await;
    // Made: the floor slot goes back and the make time is counted (docs/floor.md).
    cafe.expect(
        request("PUT", &format!("/admin/orders/{paid_with_key}/status"))
            .bearer(&clerk_access)
            .json(&json!({"status": "READY"}))
            .build(),
        200,
    )
    .await;

    // The pickup display's board: the order just made READY is called, by its number alone.
    let board = cafe
        .expect(request("GET", "/shop/board").build(), 200)
        .await;
    assert!(
        board["result"]["ready"]
            .as_array()
            .is_some_and(|ready| !ready.is_empty()),
        "{board}"
    );

    // The floor: staff close the shop (new orders refused), the public sees it, staff open it.
    let shop = |open: bool| {
        request("PUT", "/admin/shop")
            .bearer(&clerk_access)
            .json(&json!({"open": open, "message": "Back at 2pm"}))
            .build()
    };
    cafe.expect(shop(false), 200).await;
    let seen = cafe.expect(request("GET", "/shop").build(), 200).await;
    assert_eq!(seen["result"]["open"], false, "{seen}");
    let refused = cafe
        .expect(
            request("POST", "/order")
                .bearer(&access)
                .json(&json!({"items": [{"itemId": COLA, "quantity": 1}]}))
                .build(),
            409,
        )
        .await;
    assert_eq!(refused["error"]["code"], "409SH000", "{refused}");
    cafe.expect(shop(true), 200).await;

    let (leaving, leaving_access, _, _) = cafe.sign_up().await;
    cafe.expect(
        request("DELETE", &format!("/member/{leaving}/withdraw"))
            .bearer(&leaving_access)
            .build(),
        200,
    )
    .await;
    cafe.expect(
        request("POST", &format!("/member/{leaving}/restore"))
            .bearer(&leaving_access)
            .build(),
        200,
    )
    .await;

    // The daily job, as EventBridge invokes it (no `now`): one member withdrawn 31 days ago.
    let due = withdrawn_long_ago(fixtures).await;
    let mut scheduled = sample("expire-withdrawals");
    if let Some(fields) = scheduled.as_object_mut() {
        fields.remove("now");
    }
    let summary =
        expire_withdrawals::handle(scheduled, None, &cafe.functions["expire-withdrawals"].app)
            .await
            .expect("expiry run");
    assert!(summary.expired >= 1, "{summary:?}");
    let ended = fixtures
        .get_member(&due)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(ended.status, MemberStatus::End);

    // The unpaid-order sweep past the payment window of an order placed now (the handler
    // refuses a `now` in production, so the service runs at that instant on the sweep's app).
    let unpaid = cafe.order(&access, COLA).await;
    let sweeper = &cafe.functions["expire-orders"].app;
    let swept = cafe::services::floor::expire_unpaid(
        sweeper.store.as_ref(),
        Utc::now() + Duration::minutes(20),
        sweeper.config.floor.payment_window,
        None,
    )
    .await
    .expect("sweep");
    assert!(swept.expired >= 1, "{swept:?}");
    let expired = cafe::store::OrderStore::get_order(fixtures, &unpaid)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(expired.status, cafe::domain::OrderStatus::Expired);
    live(cafe, &access, &member).await;
    let _ = stack;
}

/// The live channel: a ticket, `$connect` (redeemed, then refused reused), `subscribe` (the
/// connection, the order's owner, the subscription rows), `$disconnect`, and the sender, whose
/// post meets a 410 (a stub management endpoint) and forgets the connection.
async fn live(cafe: &Cafe, access: &str, member: &str) {
    use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
    let ticket = cafe
        .expect(request("POST", "/live/ticket").bearer(access).build(), 200)
        .await["result"]["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let ws = |function: &str, connection: &str, edit: &dyn Fn(&mut Value)| {
        let mut event = sample(function);
        event["requestContext"]["connectionId"] = json!(connection);
        edit(&mut event);
        serde_json::from_value::<ApiGatewayWebsocketProxyRequest>(event).expect("WebSocket event")
    };
    let with_ticket = |e: &mut Value| {
        e["queryStringParameters"] = json!({"ticket": ticket});
        e["multiValueQueryStringParameters"] = json!({"ticket": [ticket]});
    };
    let connect = &cafe.functions["live-connect"].app;
    let opened = live_connect::handle(ws("live-connect", "iam-c1", &with_ticket), connect).await;
    assert_eq!(opened["statusCode"], 200, "{opened}");
    let reused = live_connect::handle(ws("live-connect", "iam-c2", &with_ticket), connect).await;
    assert_eq!(reused["statusCode"], 401, "{reused}");
    let order = cafe.order(access, COLA).await;
    let subscribe = &cafe.functions["live-subscribe"].app;
    for topic in [
        json!({"action": "subscribe", "topic": "order", "orderId": order}),
        json!({"action": "subscribe", "topic": "orders"}),
    ] {
        let answer = live_subscribe::handle(
            ws("live-subscribe", "iam-c1", &|e| {
                e["body"] = json!(topic.to_string())
            }),
            subscribe,
        )
        .await;
        assert!(
            answer["body"]
                .as_str()
                .is_some_and(|b| b.contains("subscribed")),
            "{answer}"
        );
    }
    // The order's creation, as the bus's rule brings it to the sender, which meets a 410.
    let created = DomainEvent::order(
        EventType::OrderCreated,
        &order,
        member,
        "PENDING_PAYMENT",
        1_500,
        Utc::now(),
    );
    let sender = &cafe.functions["live-sender"];
    let (endpoint, posts) = cafe_local::testing::gone_management_endpoint().await;
    let aws = Aws::load(Some(&endpoint), std::time::Duration::from_secs(10))
        .await
        .with_recorder(sender.recorder.clone());
    let api = live_sender::ManagementApi::new(aws.api_gateway_management(&endpoint));
    let done = live_sender::handle(
        cafe::events::eventbridge::BusEvent::of(&created),
        &sender.app,
        Arc::new(api),
    )
    .await
    .expect("the table was read");
    assert_eq!(done.gone, 1);
    assert_eq!(posts.lock().unwrap_or_else(|p| p.into_inner()).len(), 1);
    let disconnect = &cafe.functions["live-disconnect"].app;
    let closed =
        live_disconnect::handle(ws("live-disconnect", "iam-c1", &|_| {}), disconnect).await;
    assert_eq!(closed["statusCode"], 200);
}

async fn withdrawn_long_ago(store: &DynamoStore) -> String {
    let at = Utc::now() - Duration::days(31);
    let member_id = cafe::ids::new_id(at);
    let member = Member {
        email: format!("{}@cafe.example", member_id.to_lowercase()),
        member_id: member_id.clone(),
        name: "Long Gone".into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Male),
        birth: chrono::NaiveDate::from_ymd_opt(1990, 5, 6),
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: at - Duration::days(100),
        session_version: 0,
    };
    let registered = DomainEvent::member(EventType::MemberRegistered, &member_id, "SERVICE", at);
    store
        .create_member(
            &member,
            &cafe::domain::StoredPassword::new("not-a-real-hash"),
            &registered,
        )
        .await
        .expect("fixture member");
    let withdrawn = DomainEvent::member(EventType::MemberWithdrawn, &member_id, "WITHDRAWN", at);
    store
        .withdraw_member(&member_id, at, &withdrawn)
        .await
        .expect("fixture withdrawal");
    member_id
}

fn sample(function: &str) -> Value {
    let path = template::root()
        .join("events")
        .join(format!("{function}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("sample JSON")
}

/// The stream publisher as deployed: its bus from the template, its own recorded client.
async fn publish_sample(stack: &Stack, template: &Yaml) -> CallRecorder {
    let env = stack.environment(template, PUBLISHER);
    let bus = env.get("EVENT_BUS_NAME").cloned().unwrap_or_default();
    let recorder = CallRecorder::new();
    let aws = Aws::load(Some(&stack.endpoint), std::time::Duration::from_secs(10))
        .await
        .with_recorder(recorder.clone());
    let publisher = cafe::events::EventBridgePublisher::from_aws(&aws, bus);
    let event = serde_json::from_value(sample(PUBLISHER)).expect("stream event");
    let response =
        events_publisher::handle(event, &publisher, &cafe::metrics::Metrics::disabled()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "the publisher refused records: {:?}",
        response.batch_item_failures
    );
    recorder
}

/// A recorded partition key for the listing, its ids cut: `MEMBER#01J…` → `MEMBER#*`,
/// `SHOP#DAY#2026-12-06` → `SHOP#DAY#*`; a key with no `#` (`SHOP`) as it is.
fn key_shape(key: &str) -> String {
    match key.split_once('#') {
        Some(("SHOP", rest)) => format!("SHOP#{}#*", rest.split('#').next().unwrap_or_default()),
        Some((kind, _)) => format!("{kind}#*"),
        None => key.to_owned(),
    }
}

/// IAM's wildcard match: `*` is any run of characters.
fn matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|skip| {
                    text.is_char_boundary(head.len() + skip)
                        && matches(tail, &text[head.len() + skip..])
                })
        }
    }
}

fn allows(grant: &Grant, action: &str, resource: &str) -> bool {
    // Actions are case-insensitive in IAM; resources are not.
    matches(
        &grant.action.to_ascii_lowercase(),
        &action.to_ascii_lowercase(),
    ) && matches(&grant.resource, resource)
}

/// `dynamodb:LeadingKeys` under `ForAllValues:StringLike`: every partition key the call names
/// matches a pattern (a call naming none passes, as in IAM).
fn allows_key(grant: &Grant, key: &str) -> bool {
    match &grant.leading_keys {
        None => true,
        Some(_) if key.is_empty() => true,
        Some(patterns) => patterns.iter().any(|p| matches(p, key)),
    }
}

/// One recorded call: action, canonical resource, the partition key it names ("" for none).
type Call = (String, String, String);

fn grants_call(grant: &Grant, (action, resource, key): &Call) -> bool {
    allows(grant, action, resource) && allows_key(grant, key)
}

/// Problems of one function: calls not granted, grants (and key patterns) never used.
fn check(function: &str, calls: &BTreeSet<Call>, grants: &[Grant]) -> Vec<String> {
    let mut problems = Vec::new();
    for call in calls {
        let (action, resource, key) = call;
        if resource.starts_with('<') {
            problems.push(format!("{function}: {action} on {resource}"));
        } else if !grants.iter().any(|g| grants_call(g, call)) {
            problems.push(format!(
                "{function}: calls {action} on {resource} (key {key:?}), which its policy does not grant"
            ));
        }
    }
    for grant in grants {
        if !calls.iter().any(|c| grants_call(grant, c)) {
            problems.push(format!(
                "{function}: is granted {} on {}, which it never uses",
                grant.action, grant.resource
            ));
        }
        for pattern in grant.leading_keys.iter().flatten() {
            let used = calls
                .iter()
                .any(|(a, r, k)| allows(grant, a, r) && !k.is_empty() && matches(pattern, k));
            if !used {
                problems.push(format!(
                    "{function}: is granted {} on keys {pattern}, which it never uses",
                    grant.action
                ));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_is_granted_exactly_the_calls_it_makes() {
    let template = template::template();
    let stack = Stack::create().await;
    let gateway = Arc::new(MockGateway::new(cafe::config::GatewayConfig::default()));
    let mut functions = BTreeMap::new();
    for (name, key) in FUNCTIONS {
        let mut deployed = deploy(&stack, &template, name, *key).await;
        deployed.app.gateway = gateway.clone();
        functions.insert(*name, deployed);
    }
    let fixtures = DynamoStore::new(
        Aws::load(Some(&stack.endpoint), std::time::Duration::from_secs(10))
            .await
            .dynamodb(),
        stack.names["Table"].clone(),
        400,
    );
    for item in cafe::domain::item::seed_items() {
        cafe::store::ItemStore::put_item(&fixtures, &item)
            .await
            .expect("seed");
    }
    let cafe = Cafe { functions, gateway };
    scenario(&cafe, &fixtures, &stack).await;

    let mut recorded: BTreeMap<String, BTreeSet<Call>> = BTreeMap::new();
    let publisher = publish_sample(&stack, &template).await;
    let recorders = cafe
        .functions
        .iter()
        .map(|(name, d)| (name.to_string(), d.recorder.clone()))
        .chain([(PUBLISHER.to_owned(), publisher)]);
    for (name, recorder) in recorders {
        let calls = recorder
            .calls()
            .iter()
            .map(|c| {
                (
                    c.action.clone(),
                    stack.canonical(&c.resource),
                    c.leading_key.clone().unwrap_or_default(),
                )
            })
            .collect();
        recorded.insert(name, calls);
    }

    let deployed = template::functions(&template);
    let mut problems = Vec::new();
    let mut policies = BTreeMap::new();
    println!("calls recorded per function (action on resource):");
    for (name, calls) in &recorded {
        println!("  {name}:");
        let shapes: BTreeSet<(&String, &String, String)> = calls
            .iter()
            .map(|(action, resource, key)| (action, resource, key_shape(key)))
            .collect();
        for (action, resource, key) in shapes {
            println!("    {action} on {resource} {key}");
        }
        let Some((_, resource)) = deployed.get(name) else {
            problems.push(format!("{name}: not in template.yaml"));
            continue;
        };
        match grants_of(&template, resource) {
            Ok(grants) => {
                problems.extend(check(name, calls, &grants));
                policies.insert(name.clone(), grants);
            }
            Err(found) => problems.extend(found.into_iter().map(|p| format!("{name}: {p}"))),
        }
    }
    for name in deployed.keys() {
        if !recorded.contains_key(name) {
            problems.push(format!(
                "{name}: in template.yaml but the scenario never ran it"
            ));
        }
    }
    template::report(
        "the recorded AWS calls and template.yaml's policies",
        problems,
    );

    // Every grant on the table's items is held to the partition keys its function uses, so a
    // function that never reads members cannot read a password hash (`MEMBER#…` rows).
    for (name, grants) in &policies {
        for grant in grants {
            if ["table/Table", "table/CredentialsTable"].contains(&grant.resource.as_str())
                && grant.action.starts_with("dynamodb:")
            {
                assert!(
                    grant.leading_keys.is_some(),
                    "{name}: {} on the whole of {} has no dynamodb:LeadingKeys condition",
                    grant.action,
                    grant.resource
                );
            }
        }
        // Passwords: written by sign-up, read by log-in alone, deleted when a member ends.
        let on_credentials: BTreeSet<&str> = grants
            .iter()
            .filter(|g| g.resource.starts_with("table/CredentialsTable"))
            .map(|g| g.action.as_str())
            .collect();
        let expected: &[&str] = match name.as_str() {
            "member-signup" => &["dynamodb:PutItem"],
            "auth-login" => &["dynamodb:BatchGetItem"],
            "expire-withdrawals" => &["dynamodb:DeleteItem"],
            _ => &[],
        };
        assert_eq!(
            on_credentials,
            expected.iter().copied().collect::<BTreeSet<_>>(),
            "{name}: its grants on the credentials table"
        );
        let reads_members = grants.iter().any(|g| {
            allows(g, "dynamodb:GetItem", "table/Table") && allows_key(g, "MEMBER#01JC0FFEE")
        });
        if matches!(
            name.as_str(),
            "items-get" | "items-list" | "shop-get" | "jwks-get"
        ) {
            assert!(
                !reads_members,
                "{name} can read a member row (a password hash)"
            );
        }
    }

    // The check must catch a broken policy: each grant removed in turn, and an unused one added.
    for (name, grants) in &policies {
        let calls = &recorded[name];
        for removed in 0..grants.len() {
            let mut narrower = grants.clone();
            let gone = narrower.remove(removed);
            let found = check(name, calls, &narrower);
            assert!(
                found.iter().any(|p| p.contains("does not grant")),
                "{name}: removing {gone:?} went unnoticed"
            );
        }
        // Each key pattern removed in turn from a grant that has several.
        for (index, grant) in grants.iter().enumerate() {
            let patterns = grant.leading_keys.clone().unwrap_or_default();
            if patterns.len() < 2 {
                continue;
            }
            for removed in 0..patterns.len() {
                let mut narrower = grants.clone();
                let mut fewer = patterns.clone();
                let gone = fewer.remove(removed);
                narrower[index].leading_keys = Some(fewer);
                let found = check(name, calls, &narrower);
                assert!(
                    found.iter().any(|p| p.contains("does not grant")),
                    "{name}: removing the key pattern {gone} from {grant:?} went unnoticed"
                );
            }
        }
        let mut wider = grants.clone();
        wider.push(Grant {
            action: "dynamodb:Scan".into(),
            resource: "table/Table".into(),
            leading_keys: None,
        });
        let found = check(name, calls, &wider);
        assert!(
            found.iter().any(|p| p.contains("never uses")),
            "{name}: an unused dynamodb:Scan grant went unnoticed"
        );
    }
}

#[test]
fn wildcards_match_like_iam() {
    let grant = |action: &str, resource: &str| Grant {
        action: action.into(),
        resource: resource.into(),
        leading_keys: None,
    };
    assert!(allows(
        &grant("dynamodb:*", "table/Table"),
        "dynamodb:Query",
        "table/Table"
    ));
    assert!(allows(
        &grant("DynamoDB:query", "table/Table"),
        "dynamodb:Query",
        "table/Table"
    ));
    assert!(allows(
        &grant("dynamodb:Query", "table/Table/index/*"),
        "dynamodb:Query",
        "table/Table/index/orders-by-member"
    ));
    // A table grant does not reach its indexes, nor an index grant the table.
    assert!(!allows(
        &grant("dynamodb:Query", "table/Table"),
        "dynamodb:Query",
        "table/Table/index/orders-by-member"
    ));
    assert!(!allows(
        &grant("dynamodb:Query", "table/Table/index/orders-by-member"),
        "dynamodb:Query",
        "table/Table"
    ));
    assert!(!allows(
        &grant("dynamodb:Get*", "*"),
        "dynamodb:Query",
        "table/Table"
    ));
}
