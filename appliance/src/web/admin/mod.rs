//! The site admin's side: site admins and staff, every route behind
//! [`AdminUser`](super::AdminUser) with the permission module it needs.
//!
//! - [`pages`]: the server-rendered admin pages.
//! - [`tasks_api`]: tasks, lines, attribution and allocation, the queue monitor, HQ's voice
//!   library.
//! - [`accounts_api`]: extensions, agent accounts, roles and staff.
//! - [`data_api`]: project data, its exports, and callbacks the admin adds.
//! - [`reports`]: the site's reports and leaderboard (S6-S9), [`report_views`] their
//!   manual-shaped tables and export, [`report_text`] their words.

pub mod account_edits;
pub mod accounts_api;
pub mod data_api;
pub mod data_page;
pub mod pages;
pub mod report_text;
pub mod report_views;
pub mod reports;
pub mod tasks_api;
