//! Domain types and rules: pure code, no I/O.

pub mod attempt;
pub mod events;
pub mod floor;
pub mod history;
pub mod item;
pub mod live;
pub mod member;
pub mod order;
pub mod text;

pub use events::{DomainEvent, EventType};
pub use history::{EntityKind, HistoryEntry};
pub use item::Item;
pub use member::{Gender, Member, MemberStatus, Role, StoredPassword};
pub use order::{Order, OrderLine, OrderStatus, Payment, PaymentStatus, PaymentType};
