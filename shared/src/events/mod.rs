//! Publishing domain events. The in-memory log serves the embedded default and tests; the
//! EventBridge publisher serves the stream-fed publisher function.

use crate::domain::{DomainEvent, EventType};
use crate::error::Result;
use async_trait::async_trait;
use std::sync::Mutex;

pub mod eventbridge;

pub use eventbridge::EventBridgePublisher;

#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `events`; returns the ids of those that could not be published after retries.
    async fn publish(&self, events: &[DomainEvent]) -> Result<Vec<String>>;
}

/// Keeps every published event in memory, in order.
#[derive(Debug, Default)]
pub struct MemoryEventLog {
    events: Mutex<Vec<DomainEvent>>,
    /// Who hears each committed batch as it commits (the local server's live channel).
    watchers: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Vec<DomainEvent>>>>,
}

impl MemoryEventLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, events: &[DomainEvent]) {
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        log.extend_from_slice(events);
        if !events.is_empty() {
            let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
            watchers.retain(|watcher| watcher.send(events.to_vec()).is_ok());
        }
    }

    /// Every batch committed from now on, in commit order (each batch is one atomic write's
    /// events); none is dropped while the receiver lives.
    pub fn watch(&self) -> tokio::sync::mpsc::UnboundedReceiver<Vec<DomainEvent>> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        receiver
    }

    pub fn events(&self) -> Vec<DomainEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn types(&self) -> Vec<EventType> {
        self.events().iter().map(|e| e.event_type).collect()
    }

    /// Empties the log and returns what it held.
    pub fn take(&self) -> Vec<DomainEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl EventPublisher for MemoryEventLog {
    async fn publish(&self, events: &[DomainEvent]) -> Result<Vec<String>> {
        self.record(events);
        Ok(Vec::new())
    }
}
