//! Files that hold secrets: created mode 0600 in folders mode 0700, from the first byte.

use std::fs;
use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Create `dir` (and parents) if missing; a folder we create is 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(dir)
}

/// Make sure `path` exists and is readable by its owner only, without touching its contents.
///
/// An existing file is never opened, only changed by path: on Linux, closing any descriptor of
/// a file drops every POSIX lock this process holds on it, so opening and closing a database
/// that SQLite has open elsewhere in the process would silently drop SQLite's locks (other
/// processes would then act as if this one were not there). A missing file is created with
/// `create_new`, so the descriptor closed is that of a file nobody had open.
pub(crate) fn private_file(path: &Path) -> io::Result<()> {
    match create_private(path) {
        Ok(_created) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    restrict(path)
}

/// Make an existing file readable by its owner only, by path (see [`private_file`]); a missing
/// one is left missing.
pub(crate) fn private_if_exists(path: &Path) -> io::Result<()> {
    match restrict(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// chmod 600 by path (a umask may have taken more away at creation; an older file may allow more).
fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Create `path` (mode 0600, in a private folder), failing if it already exists.
fn create_private(path: &Path) -> io::Result<fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        private_dir(parent)?;
    }
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path)
}
