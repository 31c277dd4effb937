//! Seed 001's subscriptions: the application's report items pinned to Power BI dashboards and delivered on
//! schedules. Domain logic as pure functions, and the one runner that does I/O (`sql_source`: an item's query on
//! its data source); the README lists the modules. The edges and the delivery job call it.

pub mod definitions;
pub mod deliveries;
pub mod delivery;
pub mod frequency;
pub mod http_source;
pub mod item;
pub mod kind;
pub mod outcome;
pub mod pacing;
pub mod pins;
pub mod push_target;
pub mod query;
pub mod rows;
pub mod spool;
pub mod sql_source;
pub mod templates;

pub use delivery::{Progress, Step};
pub use frequency::{Frequency, FrequencyError, TimeOfDay, Weekday};
pub use item::{Binding, Column, ColumnSpec, ColumnType, Item, ItemError, ItemSpec};
pub use kind::{PushColumn, PushType, VisualKind};
pub use outcome::{Decision, Fault, decide, delivery_error, fault_from_power_bi};
pub use pacing::PushWindow;
pub use rows::{Row, RowError, push_rows};
pub use spool::{Spool, SpoolError, SpooledRows};
