//! The lxc-tmpl host (work in progress).
pub mod rootfs;
pub mod runner;
pub mod sys;
