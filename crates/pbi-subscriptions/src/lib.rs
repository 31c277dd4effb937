//! Seed 001's subscriptions: the application's report items pinned to Power BI dashboards and delivered on
//! schedules. Pure domain logic (the README lists the modules); the edges and the delivery job call it.

pub mod delivery;
pub mod frequency;
pub mod item;
pub mod kind;
pub mod outcome;
pub mod pacing;
pub mod query;
pub mod rows;

pub use delivery::{Progress, Step};
pub use frequency::{Frequency, FrequencyError, TimeOfDay, Weekday};
pub use item::{Binding, Column, ColumnSpec, ColumnType, Item, ItemError, ItemSpec};
pub use kind::{PushColumn, PushType, VisualKind};
pub use outcome::{Decision, Fault, decide, delivery_error};
pub use pacing::PushWindow;
pub use rows::{Row, RowError, push_rows};
