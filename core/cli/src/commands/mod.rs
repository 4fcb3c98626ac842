//! One module per subcommand.

pub mod create;
pub mod list;
