//! busybox plugin (work in progress)
