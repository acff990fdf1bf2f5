//! Output layouts: each turns a selection into a [`Plan`](crate::plan::Plan)
//! and knows nothing of where the plan is written.

pub mod dir;
pub mod registry;
