//! `serve`: a read-only registry over ROOT (see [`crate::serve`]).

use std::path::Path;

use crate::error::Result;
use crate::serve::{Options, Started};

/// Serves `root` until Ctrl-C or SIGTERM; `started` is told the address.
pub fn run(root: &Path, opts: &Options, started: impl FnOnce(&Started)) -> Result<()> {
    crate::serve::run(root, opts, started)
}
