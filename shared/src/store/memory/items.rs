//! [`ItemStore`] in memory: the catalogue and its stock.

use super::*;

#[async_trait]
impl ItemStore for MemoryStore {
    async fn list_items(&self) -> Result<Vec<Item>> {
        let mut items: Vec<Item> = self.read(|s| s.items.values().cloned().collect());
        items.sort_by(|a, b| a.item_id.cmp(&b.item_id));
        Ok(items)
    }

    async fn get_item(&self, item_id: &str) -> Result<Option<Item>> {
        Ok(self.read(|s| s.items.get(item_id).cloned()))
    }

    async fn get_items(&self, item_ids: &[String]) -> Result<Vec<Item>> {
        Ok(self.read(|s| {
            item_ids
                .iter()
                .filter_map(|id| s.items.get(id).cloned())
                .collect()
        }))
    }

    async fn get_member_and_items(
        &self,
        member_id: &str,
        item_ids: &[String],
    ) -> Result<(Option<Member>, Vec<Item>)> {
        Ok(self.read(|s| {
            let items = item_ids
                .iter()
                .filter_map(|id| s.items.get(id).cloned())
                .collect();
            (s.members.get(member_id).cloned(), items)
        }))
    }

    async fn put_item(&self, item: &Item) -> Result<()> {
        self.commit(&[], |s| {
            s.items.insert(item.item_id.clone(), item.clone());
            Ok(())
        })
    }
}
