/*!
The lxc-tmpl host: everything privileged and everything distro-agnostic.

A distro plugin (see the `lxc-tmpl-plugin-api` crate) knows one distribution;
this crate does the rest, and is the only code that forks, mounts, chroots or
writes into a rootfs:

- [`plugin`]: finding and loading plugin libraries with every check, and the
  [`HostApi`](lxc_tmpl_plugin_api::HostApi) served to their hooks;
- [`request`] and [`create`]: what a create is asked to do, and running a
  plugin's hooks in order to make a container;
- [`container`]: the container directory, claimed with lxc-create's `partial`
  protocol and removed if the create fails;
- [`rootfs`]: symlink-safe file operations inside a rootfs;
- [`runner`] and [`sys`]: commands run inside a rootfs, and host tools, in
  fresh namespaces, leaving no process or mount behind;
- [`interrupt`]: SIGINT, SIGTERM and SIGHUP kill every child tree and roll the
  create back like a failure;
- [`cache`] and [`lock`]: the rootfs cache and its locks;
- [`lxcconf`]: the LXC config file, in the dialect of the target LXC;
- [`render`]: minijinja templates given as source text;
- [`report`]: where progress and log lines go, and errors as one line;
- [`image`]: LXC and Incus/LXD images built with the same hooks and cache, reproducibly;
- [`idmap`]: unprivileged containers' id ranges, and shifting a rootfs into them;
- [`names`] and [`facts`]: container names and host facts;
- [`doctor`]: the checks of `lxc-tmpl doctor`, whether this host is ready.

Errors are typed per module (`thiserror`); the `lxc-tmpl` binary adds context.
*/

// Raw std::fs writes (clippy.toml's disallowed-methods) are denied crate-wide:
// a path-following write into a rootfs or a container directory is how a
// symlink leads a write to the host. Only the modules that handle host paths
// root chose (container dir, cache bookkeeping, locks) allow them, each saying why.
#![deny(clippy::disallowed_methods)]

pub mod backing;
pub mod cache;
pub mod container;
pub mod create;
pub mod doctor;
pub mod facts;
pub mod idmap;
pub mod image;
pub mod interrupt;
pub mod lock;
pub mod lxcconf;
pub mod names;
pub mod plugin;
pub mod render;
pub mod report;
pub mod request;
pub mod rootfs;
pub mod runner;
pub mod sys;
