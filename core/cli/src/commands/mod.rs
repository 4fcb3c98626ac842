//! One module per subcommand.

pub mod create;
pub mod doctor;
pub mod install;
pub mod list;
pub mod new_plugin;
pub mod template;
