//! What both test files of `payment-create` start from.

use cafe::App;
use cafe::domain::Member;

/// A member in `SERVICE` (or withdrawn) and an access token for them.
pub async fn member(app: &App, withdrawn: bool) -> (Member, String) {
    let now = app.clock.now();
    let member = cafe::testing::stored_member(app.store.as_ref(), "pay.test", withdrawn, now)
        .await
        .expect("member");
    let token = app
        .tokens
        .issue(&member.member_id, cafe::domain::Role::Customer, 0, now)
        .await
        .expect("token");
    (member, token)
}
