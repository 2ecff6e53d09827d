//! The store test suite, written once and run against both implementations: every test is an
//! async fn over a [`Backend`]; the `suite!` macro instantiates it for `MemoryStore` and for
//! `DynamoStore` on moto (`CAFE_TEST_DYNAMODB_ENDPOINT`, one fresh table per test).

#[path = "store_suite/dynamo_only.rs"]
mod dynamo_only;
#[path = "store_suite/floor.rs"]
mod floor;
#[path = "store_suite/harness.rs"]
mod harness;
#[path = "store_suite/idempotency.rs"]
mod idempotency;
#[path = "store_suite/items_orders.rs"]
mod items_orders;
#[path = "store_suite/live.rs"]
mod live;
#[path = "store_suite/members.rs"]
mod members;
#[path = "store_suite/staff.rs"]
mod staff;
#[path = "store_suite/tokens.rs"]
mod tokens;

pub use harness::Backend;

macro_rules! suite {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::$module::$test(crate::Backend::memory()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::$module::$test(crate::Backend::dynamo().await).await;
                }
            )*
        }
    };
}

suite!(
    members::creates_and_finds_members,
    members::refuses_a_taken_email_and_writes_nothing,
    members::sign_up_writes_the_member_and_its_first_refresh_token_together,
    members::concurrent_signups_with_one_email_make_exactly_one_member,
    members::withdraw_and_restore_follow_the_life_cycle,
    members::a_read_member_withdraws_and_restores_with_the_same_answers,
    members::restore_is_refused_after_the_window,
    members::due_withdrawals_page_oldest_first_and_end_members,
    members::end_member_is_refused_for_another_withdrawal,
    members::a_tampered_due_cursor_is_refused,
    members::ending_erases_personal_data_and_frees_the_email,
    members::a_restored_member_is_not_erased,
    members::session_versions_move_on_when_sessions_end,
    tokens::rotation_issues_a_successor_in_the_same_family,
    tokens::reusing_a_used_token_revokes_the_family,
    tokens::expired_and_unknown_tokens_are_refused,
    tokens::concurrent_rotations_let_exactly_one_through,
    tokens::a_repeat_within_the_grace_replays_the_rotation_and_later_revokes,
    tokens::concurrent_repeats_of_one_rotation_all_get_it,
    tokens::logging_out_revokes_the_whole_family_and_only_it,
    tokens::a_successor_keeps_its_familys_session_version,
    items_orders::items_are_stored_listed_and_batch_read,
    items_orders::orders_are_created_with_history_and_event,
    items_orders::orders_page_newest_first,
    items_orders::a_tampered_order_cursor_is_refused,
    items_orders::an_order_cursor_only_serves_the_member_it_was_issued_for,
    items_orders::complete_payment_takes_stock_and_stores_payments,
    items_orders::a_short_line_fails_the_whole_payment,
    items_orders::paying_needs_a_pending_order,
    items_orders::concurrent_payments_never_oversell,
    items_orders::cancelling_a_pending_order,
    items_orders::cancelling_a_completed_order_gives_stock_back,
    idempotency::begin_finish_replay_and_conflict,
    idempotency::stale_and_expired_records_are_taken_over,
    idempotency::abandon_forgets_only_in_progress_keys,
    idempotency::a_taken_over_record_belongs_to_its_new_owner,
    idempotency::a_linked_attempt_holds_its_key_until_it_settles,
    idempotency::due_attempts_are_the_unsettled_ones_past_their_deadline,
    idempotency::concurrent_begins_start_exactly_once,
    staff::roles_are_set_only_on_members_in_service,
    staff::item_edits_need_the_version_they_read,
    staff::paid_orders_queue_oldest_first_and_move_one_step_at_a_time,
    floor::pickup_numbers_count_per_day,
    floor::slots_are_reserved_with_the_attempt_and_given_back_with_its_refund,
    floor::a_closed_shop_takes_no_new_order,
    floor::pending_orders_are_listed_until_paid_cancelled_or_expired,
    live::tickets_are_redeemed_once_and_only_before_they_expire,
    live::subscriptions_are_found_by_key_until_they_expire_and_go_with_their_connection,
);
