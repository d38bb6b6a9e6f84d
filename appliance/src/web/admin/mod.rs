//! The site admin's side: site admins and staff, every route behind
//! [`AdminUser`](super::AdminUser) with the permission module it needs.
//!
//! - [`pages`]: the server-rendered admin pages.
//! - [`tasks_api`]: tasks, lines, attribution and allocation, the queue monitor, HQ's voice
//!   library.
//! - [`accounts_api`]: extensions, agent accounts, roles and staff.
//! - [`data_api`]: project data, its exports, and callbacks the admin adds.

pub mod accounts_api;
pub mod data_api;
pub mod pages;
pub mod tasks_api;
