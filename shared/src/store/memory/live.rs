//! The live channel's tickets, connections and subscriptions, in memory.

use super::*;
use crate::domain::live::Grant;

#[derive(Default)]
pub(super) struct Live {
    /// ticket hash → (grant, expiry).
    tickets: HashMap<String, (Grant, DateTime<Utc>)>,
    /// connection id → (grant, expiry, its subscription keys).
    connections: HashMap<String, (Grant, DateTime<Utc>, BTreeSet<String>)>,
    /// subscription key → connection id → expiry.
    subscriptions: HashMap<String, HashMap<String, DateTime<Utc>>>,
}

#[async_trait]
impl LiveStore for MemoryStore {
    async fn put_live_ticket(
        &self,
        ticket_hash: &str,
        grant: &Grant,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.commit(&[], |s| {
            s.live
                .tickets
                .insert(ticket_hash.to_owned(), (grant.clone(), expires_at));
            Ok(())
        })
    }

    async fn redeem_live_ticket(
        &self,
        ticket_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        self.commit(&[], |s| {
            s.live.tickets.retain(|_, (_, expires)| *expires > now);
            Ok(s.live.tickets.remove(ticket_hash).map(|(grant, _)| grant))
        })
    }

    async fn put_live_connection(
        &self,
        connection_id: &str,
        grant: &Grant,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.commit(&[], |s| {
            s.live.connections.insert(
                connection_id.to_owned(),
                (grant.clone(), expires_at, BTreeSet::new()),
            );
            Ok(())
        })
    }

    async fn get_live_connection(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        Ok(self.read(|s| {
            s.live
                .connections
                .get(connection_id)
                .filter(|(_, expires, _)| *expires > now)
                .map(|(grant, _, _)| grant.clone())
        }))
    }

    async fn add_live_subscription(
        &self,
        connection_id: &str,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.commit(&[], |s| {
            let Some((_, _, keys)) = s.live.connections.get_mut(connection_id) else {
                return Err(Error::NotFound("connection"));
            };
            keys.insert(key.to_owned());
            s.live
                .subscriptions
                .entry(key.to_owned())
                .or_default()
                .insert(connection_id.to_owned(), expires_at);
            Ok(())
        })
    }

    async fn live_listeners(&self, key: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
        Ok(self.read(|s| {
            let mut ids: Vec<String> = s
                .live
                .subscriptions
                .get(key)
                .map(|listeners| {
                    listeners
                        .iter()
                        .filter(|(_, expires)| **expires > now)
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .unwrap_or_default();
            ids.sort_unstable();
            ids
        }))
    }

    async fn remove_live_connection(&self, connection_id: &str) -> Result<()> {
        self.commit(&[], |s| {
            if let Some((_, _, keys)) = s.live.connections.remove(connection_id) {
                for key in keys {
                    if let Some(listeners) = s.live.subscriptions.get_mut(&key) {
                        listeners.remove(connection_id);
                        if listeners.is_empty() {
                            s.live.subscriptions.remove(&key);
                        }
                    }
                }
            }
            Ok(())
        })
    }
}
