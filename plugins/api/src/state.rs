//! Per-create state: what a plugin works out once (in `validate`) and the
//! later hooks of the same create get back.
//!
//! A plugin is one instance for the whole process, and the host calls its
//! hooks one at a time, each with the create's [`HookContext`]. The hooks of
//! one create share [`HookContext::create_id`], so state keyed on it is
//! computed once per create and never leaks into another one, not even in
//! unit tests that run many creates in one process (`testing::context`
//! gives each context its own id).

use std::collections::VecDeque;
use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use crate::HookContext;

/// A new [`HookContext::create_id`]: unique in this process (hosts and
/// `testing::context` call it once per create).
pub fn new_create_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How many creates a [`PerCreate`] remembers. A process runs one create at a
/// time; unit tests run many side by side in one process, and each must find
/// its own value again.
const REMEMBERED: usize = 64;

/// A value computed once per create.
///
/// ```
/// use lxc_tmpl_plugin_api::{HookContext, PerCreate, PluginError};
///
/// struct Plan { release: String }
/// static PLANS: PerCreate<Plan> = PerCreate::new();
///
/// fn plan(ctx: &HookContext) -> Result<std::sync::Arc<Plan>, PluginError> {
///     PLANS.get_or_try_init(ctx, || Ok(Plan { release: ctx.option("release").unwrap_or("stable").into() }))
/// }
/// ```
#[derive(Debug)]
pub struct PerCreate<T> {
    /// (create id, value, how many times it was computed), newest last.
    slots: Mutex<VecDeque<(u64, Arc<T>, usize)>>,
}

impl<T> PerCreate<T> {
    /// Empty; `const`, so it can be a `static`.
    pub const fn new() -> Self {
        PerCreate { slots: Mutex::new(VecDeque::new()) }
    }

    /// The value for the create of `ctx`: computed by `init` the first time
    /// it is asked for in that create, the same `Arc` afterwards.
    ///
    /// # Errors
    /// `init`'s error, which is not kept: the next call tries again.
    pub fn get_or_try_init<E>(&self, ctx: &HookContext, init: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        if let Some((_, value, _)) = self.lock().iter().find(|(id, _, _)| *id == ctx.create_id) {
            return Ok(Arc::clone(value));
        }
        // Not under the lock: `init` calls the host, which may take long.
        let value = Arc::new(init()?);
        let mut slots = self.lock();
        let computed = match slots.iter().position(|(id, _, _)| *id == ctx.create_id) {
            Some(i) => slots.remove(i).map_or(0, |(_, _, n)| n),
            None => 0,
        };
        if slots.len() == REMEMBERED {
            slots.pop_front();
        }
        slots.push_back((ctx.create_id, Arc::clone(&value), computed + 1));
        Ok(value)
    }

    /// How many times the value of `ctx`'s create was computed (0 when it
    /// never was, or was forgotten): 1 is what the plugin's tests check.
    pub fn times_computed(&self, ctx: &HookContext) -> usize {
        self.lock().iter().find(|(id, _, _)| *id == ctx.create_id).map_or(0, |(_, _, n)| *n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Arc<T>, usize)>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for PerCreate<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::cell::Cell;

    use super::PerCreate;
    use crate::testing::context;

    #[test]
    fn computed_once_per_create_and_again_for_the_next() {
        let state: PerCreate<u32> = PerCreate::new();
        let runs = Cell::new(0);
        let compute = || -> Result<u32, ()> {
            runs.set(runs.get() + 1);
            Ok(runs.get())
        };
        let first = context("d", "c1", &[]);
        assert_eq!(*state.get_or_try_init(&first, compute).unwrap(), 1);
        assert_eq!(*state.get_or_try_init(&first, compute).unwrap(), 1, "the same create reuses it");
        assert_eq!(state.times_computed(&first), 1);
        let second = context("d", "c1", &[]);
        assert_ne!(first.create_id, second.create_id, "every context is another create");
        assert_eq!(*state.get_or_try_init(&second, compute).unwrap(), 2);
        assert!(state.get_or_try_init(&context("d", "c2", &[]), || Err::<u32, ()>(())).is_err());
        assert_eq!(runs.get(), 2);
    }
}
