//! The EventBridge publisher used by the stream-fed `events-publisher` function.
//!
//! `PutEvents` takes at most 10 entries a call and may accept some entries and refuse others
//! (`FailedEntryCount`, a per-entry `ErrorCode`); only the refused ones are sent again, a few
//! times with backoff, and what still fails is returned by id so the caller can report it.

use super::EventPublisher;
use crate::domain::DomainEvent;
use crate::domain::events::EVENT_SOURCE;
use crate::error::Result;
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime as SdkDateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use tracing::Instrument;

/// PutEvents' limit of entries per call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// Retry policy for refused entries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Calls after the first one.
    pub retries: u32,
    /// Wait before the first retry; doubled each time.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            first_backoff: Duration::from_millis(100),
        }
    }
}

pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
    retry: RetryPolicy,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The publisher over the process's shared AWS configuration.
    pub fn from_aws(aws: &crate::aws::Aws, bus_name: impl Into<String>) -> Self {
        Self::new(aws.eventbridge(), bus_name)
    }

    fn entry(&self, event: &DomainEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(EVENT_SOURCE)
            .detail_type(event.event_type.as_str())
            .detail(detail_json(event))
            .time(SdkDateTime::from_millis(
                event.occurred_at.timestamp_millis(),
            ))
            .build()
    }

    /// One PutEvents call; `Ok(accepted[i])` per entry, `Err` when the call itself failed.
    async fn put(&self, events: &[DomainEvent]) -> std::result::Result<Vec<bool>, String> {
        let entries: Vec<PutEventsRequestEntry> = events.iter().map(|e| self.entry(e)).collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .instrument(crate::spans::dependency_span("eventbridge", "PutEvents"))
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        let results = output.entries();
        if results.len() != events.len() {
            return Err(format!(
                "PutEvents answered {} results for {} entries",
                results.len(),
                events.len()
            ));
        }
        Ok(results
            .iter()
            .map(|r| r.error_code().is_none() && r.event_id().is_some())
            .collect())
    }
}

/// The EventBridge `detail`: the event's own detail plus its stable `eventId`, so consumers can
/// drop the duplicates that at-least-once delivery produces.
pub fn detail_json(event: &DomainEvent) -> String {
    detail_value(event).to_string()
}

fn detail_value(event: &DomainEvent) -> Value {
    let mut detail = match &event.detail {
        Value::Object(map) => map.clone(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".into(), other.clone());
            map
        }
    };
    detail.insert("eventId".into(), Value::String(event.event_id.clone()));
    Value::Object(detail)
}

/// An event of the bus as an EventBridge rule hands it to a Lambda target: the envelope fields
/// the cafe reads (others, such as `account` or `resources`, are ignored).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BusEvent {
    #[serde(default)]
    pub id: Option<String>,
    pub source: String,
    pub detail_type: String,
    #[serde(default)]
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub detail: Value,
}

impl BusEvent {
    /// `event` as a rule on the bus delivers it, once [`EventBridgePublisher`] has put it there
    /// (no envelope id; the time in whole seconds, as EventBridge keeps it).
    pub fn of(event: &DomainEvent) -> Self {
        Self {
            id: None,
            source: EVENT_SOURCE.to_owned(),
            detail_type: event.event_type.as_str().to_owned(),
            time: chrono::DateTime::from_timestamp(event.occurred_at.timestamp(), 0),
            detail: detail_value(event),
        }
    }

    /// The domain event this carries: the inverse of the publisher's entry (source
    /// [`EVENT_SOURCE`], detail-type the event type, detail [`detail_json`]). `None` for another
    /// source, an unknown type or a detail without its `eventId`; the time is the detail's `at`
    /// (milliseconds), else the envelope's `time` (whole seconds).
    pub fn domain_event(&self) -> Option<DomainEvent> {
        if self.source != EVENT_SOURCE {
            return None;
        }
        let event_type = serde_json::from_value(Value::String(self.detail_type.clone())).ok()?;
        let mut detail = self.detail.as_object()?.clone();
        let event_id = detail.remove("eventId")?.as_str()?.to_owned();
        let occurred_at = detail
            .get("at")
            .and_then(Value::as_str)
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
            .or(self.time)?;
        Some(DomainEvent {
            event_id,
            event_type,
            occurred_at,
            detail: Value::Object(detail),
        })
    }
}

/// Sends `events` in calls of at most [`MAX_ENTRIES_PER_CALL`] through `send`, resending the
/// refused entries of each call up to `retry.retries` times; returns the ids still refused.
pub async fn publish_with_retries<F, Fut>(
    events: &[DomainEvent],
    retry: RetryPolicy,
    send: F,
) -> Vec<String>
where
    F: Fn(Vec<DomainEvent>) -> Fut,
    Fut: Future<Output = std::result::Result<Vec<bool>, String>>,
{
    let mut failed = Vec::new();
    for chunk in events.chunks(MAX_ENTRIES_PER_CALL) {
        let mut pending: Vec<DomainEvent> = chunk.to_vec();
        let mut backoff = retry.first_backoff;
        for attempt in 0..=retry.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            pending = match send(pending.clone()).await {
                Ok(accepted) => pending
                    .into_iter()
                    .zip(accepted)
                    .filter(|(_, ok)| !ok)
                    .map(|(event, _)| event)
                    .collect(),
                Err(reason) => {
                    tracing::warn!(attempt, entries = pending.len(), %reason, "PutEvents call failed");
                    pending
                }
            };
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            let ids: Vec<&str> = pending.iter().map(|e| e.event_id.as_str()).collect();
            tracing::error!(event_ids = ?ids, "events could not be published after retries");
            failed.extend(pending.into_iter().map(|e| e.event_id));
        }
    }
    failed
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<Vec<String>> {
        Ok(publish_with_retries(
            events,
            self.retry,
            |batch| async move { self.put(&batch).await },
        )
        .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventType;
    use std::sync::Mutex;

    fn events(n: usize) -> Vec<DomainEvent> {
        (0..n)
            .map(|i| {
                DomainEvent::member(
                    EventType::MemberRegistered,
                    &format!("m{i}"),
                    "SERVICE",
                    crate::testing::epoch(),
                )
            })
            .collect()
    }

    #[test]
    fn a_published_event_reads_back_as_the_same_domain_event() {
        let at = crate::testing::epoch() + chrono::Duration::milliseconds(1_234);
        let item = crate::domain::item::seed_items().remove(0);
        let all = [
            DomainEvent::member(EventType::MemberWithdrawn, "m1", "WITHDRAWN", at),
            DomainEvent::order(
                EventType::OrderFulfilmentAdvanced,
                "o1",
                "m1",
                "READY",
                9,
                at,
            ),
            DomainEvent::shop(false, Some("back at 3"), "s1", at),
            DomainEvent::item(EventType::ItemStockChanged, &item, "s1", Some("count"), at),
        ];
        for event in all {
            // As a rule delivers it: EventBridge's own time has whole seconds.
            let delivered: BusEvent = serde_json::from_value(serde_json::json!({
                "version": "0",
                "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                "detail-type": event.event_type.as_str(),
                "source": EVENT_SOURCE,
                "account": "123456789012",
                "time": "2026-01-01T00:00:05Z",
                "region": "ap-northeast-2",
                "resources": [],
                "detail": serde_json::from_str::<Value>(&detail_json(&event)).expect("json"),
            }))
            .expect("a bus event");
            assert_eq!(delivered.domain_event(), Some(event.clone()));
            assert_eq!(BusEvent::of(&event).domain_event(), Some(event.clone()));
            let mut other = delivered.clone();
            other.source = "aws.events".into();
            assert_eq!(other.domain_event(), None);
            let mut unknown = delivered.clone();
            unknown.detail_type = "Scheduled Event".into();
            assert_eq!(unknown.domain_event(), None);
            let mut anonymous = delivered.clone();
            anonymous
                .detail
                .as_object_mut()
                .map(|d| d.remove("eventId"));
            assert_eq!(anonymous.domain_event(), None);
        }
    }

    const FAST: RetryPolicy = RetryPolicy {
        retries: 2,
        first_backoff: Duration::from_millis(1),
    };

    #[tokio::test]
    async fn sends_at_most_ten_a_call_and_resends_only_refused_entries() {
        let all = events(23);
        let flaky = all[12].event_id.clone();
        let calls: Mutex<Vec<Vec<String>>> = Mutex::default();
        let failed = publish_with_retries(&all, FAST, |batch| {
            let ids: Vec<String> = batch.iter().map(|e| e.event_id.clone()).collect();
            let seen_before = calls
                .lock()
                .map(|c| c.iter().flatten().any(|id| *id == flaky))
                .unwrap_or(false);
            if let Ok(mut c) = calls.lock() {
                c.push(ids.clone());
            }
            let accepted = ids.iter().map(|id| *id != flaky || seen_before).collect();
            async move { Ok(accepted) }
        })
        .await;
        assert!(failed.is_empty());
        let calls = calls.into_inner().expect("calls");
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 1, 3]);
        assert_eq!(calls[2], [flaky]);
    }

    #[tokio::test]
    async fn entries_still_refused_after_retries_are_returned_by_id() {
        let all = events(4);
        let bad = all[1].event_id.clone();
        let attempts = Mutex::new(0);
        let failed = publish_with_retries(&all, FAST, |batch| {
            if let Ok(mut a) = attempts.lock() {
                *a += 1;
            }
            let bad = bad.clone();
            async move { Ok(batch.iter().map(|e| e.event_id != bad).collect()) }
        })
        .await;
        assert_eq!(failed, [bad]);
        assert_eq!(attempts.into_inner().expect("attempts"), 3);
    }

    #[tokio::test]
    async fn a_failing_call_is_retried_then_reports_every_entry() {
        let all = events(3);
        let failed = publish_with_retries(&all, FAST, |_batch| async {
            Err::<Vec<bool>, _>("down".to_owned())
        })
        .await;
        let ids: Vec<String> = all.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(failed, ids);
    }

    #[test]
    fn detail_carries_the_event_id() {
        let event = &events(1)[0];
        let detail: Value = serde_json::from_str(&detail_json(event)).expect("json");
        assert_eq!(detail["eventId"], event.event_id.as_str());
        assert_eq!(detail["memberId"], "m0");
        assert_eq!(detail["status"], "SERVICE");
    }
}
