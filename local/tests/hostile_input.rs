//! Hostile input on every endpoint, table-driven: malformed and truncated JSON, wrong types,
//! missing and extra fields, duplicate keys, numbers past i64, zero and negative amounts,
//! quantities past limits, empty arrays, a 20 000-line order, unicode and control characters,
//! bodies of 1 MiB, wrong or missing content types, odd path and query parameters.
//!
//! Each case must get the contract's 4xx (the exact code where the contract fixes one), never a
//! 5xx, in the failure envelope, and leave every stored thing as it was: members and their
//! history, orders with payments and history, items and stock, committed events and the
//! gateway's ledger are compared before and after each case. All failing cases are reported at
//! once.
//!
//! Content type: a missing `Content-Type` is taken as JSON; a declared non-JSON one (form,
//! multipart, `text/plain`, XML) is 400CO000 naming `Content-Type`, even around a valid JSON body
//! (those are the types browsers send cross-site without a preflight). Every body must also be a
//! JSON object. The content-type cases check that a missing, wrong or lying header never gets a
//! body past validation or into a 5xx.
//!
//! Path parameters arrive decoded, as API Gateway hands them to the function, so `..`, NUL and
//! percent signs reach the handler as they are.

mod common;

use common::{BOOK, COLA, Raw, World, raw};
use serde_json::{Value, json};

const BAD: &str = "400CO000";

struct Case {
    name: String,
    req: Raw,
    expect: Vec<&'static str>,
}

fn case(name: impl Into<String>, req: Raw, expect: &[&'static str]) -> Case {
    Case {
        name: name.into(),
        req,
        expect: expect.to_vec(),
    }
}

/// A POST endpoint with a JSON body, the request it starts from, and a valid body.
struct BodyEndpoint {
    label: &'static str,
    base: Raw,
    valid: Value,
}

fn body_endpoints(w: &World) -> Vec<BodyEndpoint> {
    vec![
        BodyEndpoint {
            label: "sign-up",
            base: raw("POST", "/member"),
            valid: json!({
                "name": "Hostile", "email": "hostile@cafe.example", "phoneNumber": "010-1234-5678",
                "gender": "MALE", "birth": "1990-01-01", "password": "hostile-password",
            }),
        },
        BodyEndpoint {
            label: "login",
            base: raw("POST", "/auth/login"),
            valid: json!({"email": w.a.email, "password": cafe_local::testing::PASSWORD}),
        },
        BodyEndpoint {
            label: "refresh",
            base: raw("POST", "/auth/refresh"),
            valid: json!({"refreshToken": w.a.refresh}),
        },
        BodyEndpoint {
            label: "order",
            base: raw("POST", "/order").bearer(&w.a.access),
            valid: json!({"items": [{"itemId": COLA, "quantity": 1}]}),
        },
        BodyEndpoint {
            label: "payment",
            base: raw("POST", "/payment").bearer(&w.a.access),
            valid: json!({"orderId": w.a_pending, "payments": [{"amount": 1500, "type": "CARD"}]}),
        },
        BodyEndpoint {
            label: "role",
            base: raw("PUT", "/admin/members/{memberId}/role")
                .param("memberId", &w.b.member_id)
                .bearer(&w.admin.access),
            valid: json!({"role": "STAFF"}),
        },
        BodyEndpoint {
            label: "item-create",
            base: raw("POST", "/admin/items").bearer(&w.staff.access),
            valid: json!({"name": "Latte", "price": 4500, "stock": 30}),
        },
        BodyEndpoint {
            label: "item-update",
            base: raw("PATCH", "/admin/items/{itemId}")
                .param("itemId", COLA)
                .bearer(&w.staff.access),
            valid: json!({"version": 0, "price": 1800}),
        },
        BodyEndpoint {
            label: "item-stock",
            base: raw("POST", "/admin/items/{itemId}/stock")
                .param("itemId", COLA)
                .bearer(&w.staff.access),
            valid: json!({"mode": "ADD", "quantity": 5, "reason": "delivery", "version": 0}),
        },
        BodyEndpoint {
            label: "order-status",
            base: raw("PUT", "/admin/orders/{orderId}/status")
                .param("orderId", &w.a_paid)
                .bearer(&w.staff.access),
            valid: json!({"status": "PREPARING"}),
        },
        BodyEndpoint {
            label: "admin-shop",
            base: raw("PUT", "/admin/shop").bearer(&w.staff.access),
            valid: json!({"open": true}),
        },
    ]
}

/// Structural damage that makes any body invalid, whatever the endpoint.
fn generic_cases(e: &BodyEndpoint, out: &mut Vec<Case>) {
    let valid = e.valid.to_string();
    let first_key = e
        .valid
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default();
    let first_value = e.valid[&first_key].to_string();
    let with_ct = |body: &[u8]| {
        e.base
            .clone()
            .bytes(body)
            .header("content-type", "application/json")
    };
    let mut add = |name: &str, req: Raw, expect: &[&'static str]| {
        out.push(case(format!("{}: {name}", e.label), req, expect));
    };
    add(
        "no body",
        e.base.clone().header("content-type", "application/json"),
        &[BAD],
    );
    for (name, body) in [
        ("empty body", String::new()),
        ("whitespace only", " \n\t ".to_owned()),
        ("null", "null".to_owned()),
        ("array", "[]".to_owned()),
        ("array of the valid body", format!("[{valid}]")),
        ("string", "\"hello\"".to_owned()),
        ("number", "42".to_owned()),
        ("true", "true".to_owned()),
        ("lone brace", "{".to_owned()),
        ("empty object", "{}".to_owned()),
        ("truncated at half", valid[..valid.len() / 2].to_owned()),
        ("truncated last brace", valid[..valid.len() - 1].to_owned()),
        ("trailing garbage", format!("{valid}garbage")),
        ("two objects", format!("{valid}{valid}")),
        (
            "trailing comma",
            format!("{},}}", &valid[..valid.len() - 1]),
        ),
        ("single quotes", valid.replace('"', "'")),
        ("unquoted keys", format!("{{{first_key}:{first_value}}}")),
        ("comment", format!("/* hi */{valid}")),
        ("NaN", format!("{{\"{first_key}\":NaN}}")),
        ("byte order mark", format!("\u{feff}{valid}")),
        ("unknown field only", "{\"admin\":true}".to_owned()),
        (
            "extra field",
            format!("{},\"admin\":true}}", &valid[..valid.len() - 1]),
        ),
        (
            "extra nested __proto__",
            format!(
                "{},\"__proto__\":{{\"admin\":true}}}}",
                &valid[..valid.len() - 1]
            ),
        ),
        (
            "duplicate key",
            format!("{{\"{first_key}\":{first_value},{}", &valid[1..]),
        ),
        (
            "key differing in case",
            valid.replacen(
                &format!("\"{first_key}\""),
                &format!("\"{}\"", first_key.to_uppercase()),
                1,
            ),
        ),
        (
            "lone surrogate escape",
            format!("{{\"{first_key}\":\"\\ud800\"}}"),
        ),
        (
            "deeply nested arrays",
            format!(
                "{{\"{first_key}\":{}{}}}",
                "[".repeat(20_000),
                "]".repeat(20_000)
            ),
        ),
        (
            "64 KiB + 1 of padding",
            format!("{valid}{}", " ".repeat(64 * 1024 + 1 - valid.len())),
        ),
    ] {
        let expect: &[&'static str] = if body.len() > 64 * 1024 {
            &["413CO000"]
        } else {
            &[BAD]
        };
        add(name, with_ct(body.as_bytes()), expect);
    }
    add(
        "exactly 64 KiB of garbage",
        with_ct(&vec![b'x'; 64 * 1024]),
        &[BAD],
    );
    add("invalid UTF-8", with_ct(b"{\"x\":\"\xff\xfe\"}"), &[BAD]);
    add("NUL bytes", with_ct(b"\0\0\0\0"), &[BAD]);
    let mebibyte = format!("{{\"{first_key}\":\"{}\"}}", "a".repeat(1024 * 1024));
    add("1 MiB body", with_ct(mebibyte.as_bytes()), &["413CO000"]);
    // Content types: none, wrong or lying headers never get a non-JSON body through.
    add(
        "form-encoded",
        e.base
            .clone()
            .bytes("email=a%40b.co&password=x")
            .header("content-type", "application/x-www-form-urlencoded"),
        &[BAD],
    );
    add(
        "multipart",
        e.base
            .clone()
            .bytes("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--")
            .header("content-type", "multipart/form-data; boundary=b"),
        &[BAD],
    );
    add(
        "XML as text/xml",
        e.base
            .clone()
            .bytes("<member><name>x</name></member>")
            .header("content-type", "text/xml"),
        &[BAD],
    );
    add(
        "truncated JSON without content type",
        e.base.clone().bytes(&valid[..valid.len() - 1]),
        &[BAD],
    );
    add(
        "truncated JSON as text/plain",
        e.base
            .clone()
            .bytes(&valid[..valid.len() - 1])
            .header("content-type", "text/plain"),
        &[BAD],
    );
    add(
        "valid JSON declared text/plain",
        e.base
            .clone()
            .bytes(&valid)
            .header("content-type", "text/plain"),
        &[BAD],
    );
    add(
        "Latin-1 bytes declared as such",
        e.base
            .clone()
            .bytes(b"{\"name\":\"caf\xe9\"}")
            .header("content-type", "application/json; charset=iso-8859-1"),
        &[BAD],
    );
    // Every field missing in turn, and every field of the wrong type.
    if let Some(fields) = e.valid.as_object() {
        for field in fields.keys() {
            let mut body = e.valid.clone();
            body.as_object_mut().expect("object").remove(field);
            add(
                &format!("missing {field}"),
                e.base.clone().json(&body),
                &[BAD],
            );
            let wrong: Vec<Value> = match &e.valid[field] {
                Value::String(_) => vec![json!(1), json!(true), json!(null), json!([]), json!({})],
                Value::Array(_) => vec![json!("x"), json!(1), json!(null), json!({}), json!([[]])],
                _ => vec![json!("x"), json!(null), json!([])],
            };
            for value in wrong {
                let mut body = e.valid.clone();
                body[field] = value.clone();
                add(
                    &format!("{field} = {value}"),
                    e.base.clone().json(&body),
                    &[BAD],
                );
            }
        }
    }
}

/// `token` with its payload's role claim set to `ADMIN` and the signature left as it was.
fn raise_role(token: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload")).expect("json");
    claims["role"] = json!("ADMIN");
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

fn with(valid: &Value, pointer: &str, value: Value) -> Value {
    let mut body = valid.clone();
    *body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} in {valid}")) = value;
    body
}

/// Values that are the right JSON type but out of range or wrong by the contract's rules.
fn semantic_cases(w: &World, out: &mut Vec<Case>) {
    let endpoints = body_endpoints(w);
    let [signup, login, refresh, order, payment, staff_endpoints @ ..] = endpoints.as_slice()
    else {
        unreachable!()
    };
    // Every staff endpoint: a customer's token, a staff token on the admin endpoint, a token whose
    // role claim was raised by hand (the signature no longer matches), and a staff member's valid
    // token after they withdrew.
    let forged = raise_role(&w.a.access);
    for e in staff_endpoints {
        let as_customer = Raw {
            headers: Vec::new(),
            ..e.base.clone()
        };
        out.push(case(
            format!("{}: a customer's token", e.label),
            as_customer.clone().bearer(&w.a.access).json(&e.valid),
            &["403CO000"],
        ));
        out.push(case(
            format!("{}: a forged role claim", e.label),
            as_customer.clone().bearer(&forged).json(&e.valid),
            &["401CO000"],
        ));
        out.push(case(
            format!("{}: no token", e.label),
            as_customer.json(&e.valid),
            &["401CO000"],
        ));
    }
    let role = &staff_endpoints[0];
    out.push(case(
        "role: a staff member's token on the admin endpoint",
        Raw {
            headers: Vec::new(),
            ..role.base.clone()
        }
        .bearer(&w.staff.access)
        .json(&role.valid),
        &["403CO000"],
    ));
    out.push(case(
        "item-create: a price below zero",
        staff_endpoints[1]
            .base
            .clone()
            .json(&with(&staff_endpoints[1].valid, "/price", json!(-1))),
        &[BAD],
    ));
    for (label, name) in [
        ("markup", "Latte<script>alert(1)</script>"),
        ("a control character", "Latte\u{1b}[31m"),
        ("a right-to-left override", "\u{202E}ettaL"),
        ("an isolate", "Latte\u{2066}x\u{2069}"),
        ("a zero-width joiner", "Lat\u{200D}te"),
    ] {
        out.push(case(
            format!("item-create: a name with {label}"),
            staff_endpoints[1].base.clone().json(&with(
                &staff_endpoints[1].valid,
                "/name",
                json!(name),
            )),
            &[BAD],
        ));
        out.push(case(
            format!("item-update: a name with {label}"),
            staff_endpoints[2]
                .base
                .clone()
                .json(&json!({"version": 0, "name": name})),
            &[BAD],
        ));
    }
    out.push(case(
        "item-update: nothing to change",
        staff_endpoints[2].base.clone().json(&json!({"version": 0})),
        &[BAD],
    ));
    out.push(case(
        "item-update: a stale version",
        staff_endpoints[2].base.clone().json(&with(
            &staff_endpoints[2].valid,
            "/version",
            json!(7),
        )),
        &["409IT000"],
    ));
    out.push(case(
        "item-stock: no reason",
        staff_endpoints[3].base.clone().json(&with(
            &staff_endpoints[3].valid,
            "/reason",
            json!(" "),
        )),
        &[BAD],
    ));
    out.push(case(
        "item-stock: below zero",
        staff_endpoints[3].base.clone().json(&json!(
            {"mode": "ADD", "quantity": -1000, "reason": "breakage", "version": 0})),
        &["400OR000"],
    ));
    out.push(case(
        "order-status: a jump past PREPARING",
        staff_endpoints[4]
            .base
            .clone()
            .json(&json!({"status": "PICKED_UP"})),
        &["400OR001"],
    ));
    out.push(case(
        "order-status: back to COMPLETED",
        staff_endpoints[4]
            .base
            .clone()
            .json(&json!({"status": "COMPLETED"})),
        &[BAD],
    ));
    for (name, body) in [
        ("open as a string", json!({"open": "false"})),
        ("open missing", json!({"message": "closed"})),
        (
            "a message of 201 characters",
            json!({"open": false, "message": "m".repeat(201)}),
        ),
        (
            "a control character in the message",
            json!({"open": false, "message": "a\u{1b}[2Jb"}),
        ),
        (
            "a message as a number",
            json!({"open": false, "message": 7}),
        ),
    ] {
        out.push(case(
            format!("admin-shop: {name}"),
            raw("PUT", "/admin/shop")
                .bearer(&w.staff.access)
                .json(&body),
            &["400CO000"],
        ));
    }
    out.push(case(
        "admin-shop: a customer's token",
        raw("PUT", "/admin/shop")
            .bearer(&w.a.access)
            .json(&json!({"open": false})),
        &["403CO000"],
    ));
    out.push(case(
        "order-status: a pending order",
        raw("PUT", "/admin/orders/{orderId}/status")
            .param("orderId", &w.a_pending)
            .bearer(&w.staff.access)
            .json(&json!({"status": "PREPARING"})),
        &["400OR001"],
    ));
    out.push(case(
        "admin-orders: an unknown status",
        raw("GET", "/admin/orders")
            .query("status", "CANCELLED")
            .bearer(&w.staff.access),
        &[BAD],
    ));
    out.push(case(
        "admin-orders: a customer",
        raw("GET", "/admin/orders").bearer(&w.a.access),
        &["403CO000"],
    ));

    let mut add = |e: &BodyEndpoint, name: &str, body: Value, expect: &[&'static str]| {
        out.push(case(
            format!("{}: {name}", e.label),
            e.base.clone().json(&body),
            expect,
        ));
    };
    let s = &signup.valid;
    for (name, pointer, value) in [
        ("empty name", "/name", json!("")),
        ("blank name", "/name", json!(" \t\n ")),
        ("51-character name", "/name", json!("a".repeat(51))),
        ("51 Hangul syllables", "/name", json!("가".repeat(51))),
        ("name with NUL", "/name", json!("Kim\u{0}Minji")),
        ("name with an ANSI escape", "/name", json!("\u{1b}[31mKim")),
        ("name with a newline", "/name", json!("Kim\nMinji")),
        (
            "name with markup",
            "/name",
            json!("<img src=x onerror=alert(1)>"),
        ),
        (
            "name with a right-to-left override",
            "/name",
            json!("\u{202E}ijniM miK"),
        ),
        (
            "name with a zero-width space",
            "/name",
            json!("Kim\u{200B}Minji"),
        ),
        ("email without @", "/email", json!("hostile.cafe.example")),
        (
            "email with a space",
            "/email",
            json!("host ile@cafe.example"),
        ),
        (
            "email with NUL",
            "/email",
            json!("hostile\u{0}@cafe.example"),
        ),
        (
            "email with a newline",
            "/email",
            json!("hostile@cafe.example\nBcc: x@y.z"),
        ),
        (
            "email of 255 bytes",
            "/email",
            json!(format!("{}@cafe.example", "a".repeat(242))),
        ),
        (
            "email without a domain dot",
            "/email",
            json!("hostile@localhost"),
        ),
        ("email with two @", "/email", json!("a@b@cafe.example")),
        (
            "email with a parenthesis",
            "/email",
            json!("pr(op@cafe.example"),
        ),
        (
            "email with angle brackets",
            "/email",
            json!("<hostile@cafe.example>"),
        ),
        ("email with a comma", "/email", json!("a,b@cafe.example")),
        ("phone without dashes", "/phoneNumber", json!("01012345678")),
        ("phone too short", "/phoneNumber", json!("010-1234-567")),
        (
            "phone with a newline",
            "/phoneNumber",
            json!("010-1234-5678\n"),
        ),
        (
            "phone in full-width digits",
            "/phoneNumber",
            json!("０１０-１２３４-５６７８"),
        ),
        (
            "phone in Arabic-Indic digits",
            "/phoneNumber",
            json!("010-١٢٣٤-5678"),
        ),
        ("phone with NUL", "/phoneNumber", json!("010-1234-\u{0}678")),
        ("gender lowercase", "/gender", json!("male")),
        ("gender unknown", "/gender", json!("OTHER")),
        ("gender empty", "/gender", json!("")),
        ("birth in the future", "/birth", json!("2999-01-01")),
        (
            "birth today",
            "/birth",
            json!(cafe::testing::epoch().date_naive().to_string()),
        ),
        ("birth 30 February", "/birth", json!("1990-02-30")),
        ("birth before 1900", "/birth", json!("1899-12-31")),
        ("birth with slashes", "/birth", json!("1990/01/01")),
        (
            "birth as a timestamp",
            "/birth",
            json!("1990-01-01T00:00:00Z"),
        ),
        ("birth empty", "/birth", json!("")),
        ("password of 7 characters", "/password", json!("1234567")),
        (
            "password of 129 characters",
            "/password",
            json!("p".repeat(129)),
        ),
        ("password empty", "/password", json!("")),
    ] {
        add(signup, name, with(s, pointer, value), &[BAD]);
    }
    add(
        signup,
        "email taken, other case",
        with(s, "/email", json!(w.a.email.to_uppercase())),
        &["400ME000"],
    );
    add(
        signup,
        "email taken, padded",
        with(s, "/email", json!(format!(" {} ", w.a.email))),
        &[BAD, "400ME000"],
    );

    let l = &login.valid;
    add(
        login,
        "invalid email",
        with(l, "/email", json!("nobody")),
        &[BAD],
    );
    add(
        login,
        "empty password",
        with(l, "/password", json!("")),
        &[BAD],
    );
    add(
        login,
        "password of 129 characters",
        with(l, "/password", json!("p".repeat(129))),
        &[BAD],
    );
    add(
        login,
        "email with NUL",
        with(l, "/email", json!(format!("{}\u{0}", w.a.email))),
        &[BAD],
    );
    add(
        login,
        "unknown email",
        with(l, "/email", json!("nobody@cafe.example")),
        &["401ME000"],
    );
    add(
        login,
        "wrong password",
        with(l, "/password", json!("wrong password!")),
        &["401ME000"],
    );
    add(
        login,
        "password with control characters",
        with(l, "/password", json!("\u{1b}[2J\u{0}\u{7f}")),
        &["401ME000"],
    );

    let r = &refresh.valid;
    for (name, token) in [
        ("empty token", String::new()),
        ("42 characters", "A".repeat(42)),
        ("44 characters", "A".repeat(44)),
        ("43 characters outside base64url", "+".repeat(43)),
        ("unknown well-formed token", "A".repeat(43)),
        ("10 000 characters", "A".repeat(10_000)),
        ("NUL inside", format!("{}\u{0}", &w.a.refresh[..42])),
        ("an access token", w.a.access.clone()),
        ("Hangul", "가".repeat(43)),
    ] {
        add(
            refresh,
            name,
            with(r, "/refreshToken", json!(token)),
            &["401CO000"],
        );
    }

    let o = &order.valid;
    for (name, pointer, value, expect) in [
        ("empty items", "/items", json!([]), BAD),
        (
            "21 lines",
            "/items",
            json!(
                (0..21)
                    .map(|i| json!({"itemId": format!("item-{i}"), "quantity": 1}))
                    .collect::<Vec<_>>()
            ),
            BAD,
        ),
        (
            "1 000 lines",
            "/items",
            json!(
                (0..1000)
                    .map(|i| json!({"itemId": format!("{i}"), "quantity": 1}))
                    .collect::<Vec<_>>()
            ),
            BAD,
        ),
        (
            "the same item twice",
            "/items",
            json!([{"itemId": COLA, "quantity": 1}, {"itemId": COLA, "quantity": 1}]),
            BAD,
        ),
        ("quantity 0", "/items/0/quantity", json!(0), BAD),
        ("quantity -1", "/items/0/quantity", json!(-1), BAD),
        ("quantity 101", "/items/0/quantity", json!(101), BAD),
        (
            "quantity i64::MAX",
            "/items/0/quantity",
            json!(i64::MAX),
            BAD,
        ),
        (
            "quantity i64::MIN",
            "/items/0/quantity",
            json!(i64::MIN),
            BAD,
        ),
        (
            "quantity u64::MAX",
            "/items/0/quantity",
            json!(u64::MAX),
            BAD,
        ),
        ("quantity 1.5", "/items/0/quantity", json!(1.5), BAD),
        ("quantity 1.0", "/items/0/quantity", json!(1.0), BAD),
        ("quantity as a string", "/items/0/quantity", json!("1"), BAD),
        ("empty itemId", "/items/0/itemId", json!(""), BAD),
        (
            "65-byte itemId",
            "/items/0/itemId",
            json!("i".repeat(65)),
            BAD,
        ),
        ("a line that is a number", "/items/0", json!(1), BAD),
        (
            "a line with an extra field",
            "/items/0",
            json!({"itemId": COLA, "quantity": 1, "unitPrice": 1}),
            BAD,
        ),
        (
            "a line without quantity",
            "/items/0",
            json!({"itemId": COLA}),
            BAD,
        ),
        (
            "items as an object",
            "/items",
            json!({"itemId": COLA, "quantity": 1}),
            BAD,
        ),
        (
            "unknown item",
            "/items/0/itemId",
            json!("01JC0FFEE00000000000000X99"),
            "404CO000",
        ),
        (
            "itemId with a trailing space",
            "/items/0/itemId",
            json!(format!("{COLA} ")),
            "404CO000",
        ),
        (
            "itemId in lowercase",
            "/items/0/itemId",
            json!(COLA.to_lowercase()),
            "404CO000",
        ),
        (
            "itemId path traversal",
            "/items/0/itemId",
            json!("../../etc/passwd"),
            "404CO000",
        ),
        (
            "itemId with NUL",
            "/items/0/itemId",
            json!("\u{0}"),
            "404CO000",
        ),
        ("itemId emoji", "/items/0/itemId", json!("☕🍰"), "404CO000"),
        (
            "itemId right-to-left override",
            "/items/0/itemId",
            json!(format!("\u{202e}{COLA}")),
            "404CO000",
        ),
        (
            "quantity past stock",
            "/items/0/quantity",
            json!(11),
            "400OR000",
        ),
    ] {
        add(order, name, with(o, pointer, value), &[expect]);
    }
    add(
        order,
        "book past stock beside a cola",
        json!({"items": [{"itemId": COLA, "quantity": 1}, {"itemId": BOOK, "quantity": 100}]}),
        &["400OR000"],
    );
    let twenty_thousand = (0..20_000)
        .map(|i| json!({"itemId": format!("{i:026}"), "quantity": 1}))
        .collect::<Vec<_>>();
    add(
        order,
        "20 000 lines",
        json!({"items": twenty_thousand}),
        &["413CO000"],
    );

    let p = &payment.valid;
    let part = |amount: Value, kind: &str| json!({"amount": amount, "type": kind});
    for (name, pointer, value, expect) in [
        ("empty payments", "/payments", json!([]), BAD),
        (
            "6 parts",
            "/payments",
            json!(vec![part(json!(250), "CARD"); 6]),
            BAD,
        ),
        ("amount 0", "/payments/0/amount", json!(0), BAD),
        ("amount -1500", "/payments/0/amount", json!(-1500), BAD),
        (
            "amount i64::MIN",
            "/payments/0/amount",
            json!(i64::MIN),
            BAD,
        ),
        (
            "amount past i64",
            "/payments/0/amount",
            json!(u64::MAX),
            BAD,
        ),
        ("amount 1500.5", "/payments/0/amount", json!(1500.5), BAD),
        ("amount 1500.0", "/payments/0/amount", json!(1500.0), BAD),
        (
            "amount as a string",
            "/payments/0/amount",
            json!("1500"),
            BAD,
        ),
        ("type lowercase", "/payments/0/type", json!("card"), BAD),
        ("type unknown", "/payments/0/type", json!("BITCOIN"), BAD),
        ("type NUL", "/payments/0/type", json!("CARD\u{0}"), BAD),
        ("empty orderId", "/orderId", json!(""), BAD),
        ("65-byte orderId", "/orderId", json!("o".repeat(65)), BAD),
        (
            "a part without type",
            "/payments/0",
            json!({"amount": 1500}),
            BAD,
        ),
        (
            "a part with an extra field",
            "/payments/0",
            json!({"amount": 1500, "type": "CARD", "status": "PAID"}),
            BAD,
        ),
        (
            "amount short of the total",
            "/payments/0/amount",
            json!(1499),
            "400PA000",
        ),
        (
            "amount over the total",
            "/payments/0/amount",
            json!(1501),
            "400PA000",
        ),
        (
            "amount i64::MAX",
            "/payments/0/amount",
            json!(i64::MAX),
            "400PA000",
        ),
        (
            "parts overflowing i64",
            "/payments",
            json!([
                part(json!(i64::MAX), "CARD"),
                part(json!(i64::MAX), "POINT")
            ]),
            "400PA000",
        ),
        (
            "parts wrapping to the total",
            "/payments",
            json!([
                part(json!(i64::MAX), "CARD"),
                part(json!(i64::MAX), "POINT"),
                part(json!(1502), "CARD")
            ]),
            "400PA000",
        ),
        (
            "unknown order",
            "/orderId",
            json!("01JD00000000000000000000ZZ"),
            "404CO000",
        ),
        (
            "orderId path traversal",
            "/orderId",
            json!("../orders"),
            "404CO000",
        ),
        ("orderId with NUL", "/orderId", json!("\u{0}"), "404CO000"),
        (
            "a cancelled order",
            "/orderId",
            json!(w.a_cancelled),
            "400OR001",
        ),
    ] {
        add(payment, name, with(p, pointer, value), &[expect]);
    }
    let paid = json!({"orderId": w.a_paid, "payments": [{"amount": 25_000, "type": "CARD"}]});
    add(
        payment,
        "a paid order, paid in full again",
        paid,
        &["400OR001"],
    );
    let pay = payment.base.clone().json(p);
    for (name, key) in [
        ("empty", b"".to_vec()),
        ("with a space", b"key with space".to_vec()),
        ("with a tab", b"key\twith\ttab".to_vec()),
        ("256 characters", vec![b'k'; 256]),
        ("non-ASCII bytes", "키".as_bytes().to_vec()),
    ] {
        out.push(case(
            format!("payment: Idempotency-Key {name}"),
            pay.clone().header("idempotency-key", key),
            &[BAD],
        ));
    }
}

/// Odd path parameters on every id-bearing route, and odd query parameters.
fn parameter_cases(w: &World, out: &mut Vec<Case>) {
    let odd = [
        "..".to_owned(),
        "../..".to_owned(),
        "%00".to_owned(),
        "\u{0}".to_owned(),
        "%2e%2e%2f".to_owned(),
        format!("{}/../{}", w.a.member_id, w.b.member_id),
        "x".repeat(10_000),
        "x".repeat(cafe::http::MAX_PATH_PARAM_BYTES),
        "x".repeat(cafe::http::MAX_PATH_PARAM_BYTES + 1),
        "☕".repeat(100),
        " ".to_owned(),
        "*".to_owned(),
        "' OR '1'='1".to_owned(),
        "${jndi:ldap://x}".to_owned(),
    ];
    for value in &odd {
        let short: String = value.chars().take(20).collect();
        for (method, template) in [
            ("GET", "/member/{memberId}"),
            ("DELETE", "/member/{memberId}/withdraw"),
            ("POST", "/member/{memberId}/restore"),
        ] {
            let req = raw(method, template)
                .param("memberId", value)
                .bearer(&w.a.access);
            // Not the caller's id: 403; too long to be anyone's id: 404.
            let expected = if value.len() > cafe::http::MAX_PATH_PARAM_BYTES {
                "404CO000"
            } else {
                "403CO000"
            };
            out.push(case(
                format!("{method} {template} with {short:?}"),
                req,
                &[expected],
            ));
        }
        for (method, template) in [
            ("GET", "/order/{orderId}"),
            ("DELETE", "/order/{orderId}/cancel"),
        ] {
            let req = raw(method, template)
                .param("orderId", value)
                .bearer(&w.a.access);
            out.push(case(
                format!("{method} {template} with {short:?}"),
                req,
                &["404CO000"],
            ));
        }
        let req = raw("GET", "/items/{itemId}").param("itemId", value);
        out.push(case(
            format!("GET /items/{{itemId}} with {short:?}"),
            req,
            &["404CO000"],
        ));
    }
    for (method, template, name) in [
        ("GET", "/member/{memberId}", "memberId"),
        ("GET", "/order/{orderId}", "orderId"),
        ("GET", "/items/{itemId}", "itemId"),
    ] {
        let req = raw(method, template).bearer(&w.a.access);
        out.push(case(
            format!("{method} {template} without {name}"),
            req,
            &["404CO000", "403CO000"],
        ));
    }
    let garbage_cursor = "not a cursor!";
    let foreign_cursor = base64_url(br#"{"k":"x","admin":true}"#);
    for (name, query) in [
        ("limit 0", vec![("limit", "0".to_owned())]),
        ("limit -1", vec![("limit", "-1".to_owned())]),
        ("limit 101", vec![("limit", "101".to_owned())]),
        (
            "limit past u64",
            vec![("limit", "99999999999999999999999".to_owned())],
        ),
        ("limit 1e1", vec![("limit", "1e1".to_owned())]),
        ("limit 2.5", vec![("limit", "2.5".to_owned())]),
        ("limit empty", vec![("limit", String::new())]),
        ("limit word", vec![("limit", "twenty".to_owned())]),
        ("limit with NUL", vec![("limit", "2\u{0}".to_owned())]),
        ("cursor empty", vec![("cursor", String::new())]),
        (
            "cursor garbage",
            vec![("cursor", garbage_cursor.to_owned())],
        ),
        (
            "cursor of forged JSON",
            vec![("cursor", foreign_cursor.clone())],
        ),
        (
            "cursor of 3 000 characters",
            vec![("cursor", "A".repeat(3000))],
        ),
        ("cursor with NUL", vec![("cursor", "\u{0}".to_owned())]),
    ] {
        let mut req = raw("GET", "/orders").bearer(&w.a.access);
        for (key, value) in query {
            req = req.query(key, &value);
        }
        out.push(case(format!("GET /orders {name}"), req, &[BAD]));
    }
    // Auth comes before the body: hostile bodies without a token are 401, not 400.
    for (method, template) in [("POST", "/order"), ("POST", "/payment")] {
        for body in ["{", "null", "{\"admin\":true}"] {
            let req = raw(method, template)
                .bytes(body)
                .header("content-type", "application/json");
            out.push(case(
                format!("{method} {template} {body} without a token"),
                req,
                &["401CO000"],
            ));
        }
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn hostile_input_gets_the_contract_4xx_and_changes_nothing() {
    let w = World::new().await;
    let mut cases = Vec::new();
    for endpoint in body_endpoints(&w) {
        generic_cases(&endpoint, &mut cases);
    }
    semantic_cases(&w, &mut cases);
    parameter_cases(&w, &mut cases);
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let before = w.snapshot().await;
        let answer = w.send(case.req.clone()).await;
        let after = w.snapshot().await;
        if answer.status >= 500 {
            failures.push(format!(
                "{}: server error {} {:?}",
                case.name, answer.status, answer.json
            ));
        } else if let Some(problem) = answer.check_failure(&case.expect) {
            failures.push(format!("{}: {problem}", case.name));
        }
        if before != after {
            failures.push(format!(
                "{}: changed stored {}",
                case.name,
                before.diff(&after)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!("{} hostile cases passed", cases.len());
}
