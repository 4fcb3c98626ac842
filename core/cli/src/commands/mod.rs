//! One module per subcommand.

pub mod completions;
pub mod create;
pub mod doctor;
pub mod image;
pub mod install;
pub mod list;
pub mod man;
pub mod new_plugin;
pub mod template;
