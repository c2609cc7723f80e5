//! Copies root folders in and out of the snapshot store: regular files, folders and
//! symlinks are copied; sockets, FIFOs and devices (a live droplet's run/ folder may hold
//! some) are skipped, as a disk image would not carry their state.

use std::fs;
use std::io;
use std::path::Path;

/// Copies the tree at `from` to `to` (which must not exist yet).
///
/// # Errors
/// The first file that could not be read or written.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        }
    }
    Ok(())
}

/// Replaces the tree at `to` with a copy of `from`.
///
/// # Errors
/// As [`copy_tree`], or removing the old tree failed.
pub fn replace_tree(from: &Path, to: &Path) -> io::Result<()> {
    match fs::remove_dir_all(to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    copy_tree(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_folders_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        fs::create_dir_all(from.join("a/b")).unwrap();
        fs::write(from.join("a/b/file"), "hello").unwrap();
        std::os::unix::fs::symlink("a/b/file", from.join("link")).unwrap();
        let to = dir.path().join("to");
        fs::create_dir_all(to.join("stale")).unwrap();
        replace_tree(&from, &to).unwrap();
        assert_eq!(fs::read_to_string(to.join("a/b/file")).unwrap(), "hello");
        assert_eq!(
            fs::read_link(to.join("link")).unwrap(),
            Path::new("a/b/file")
        );
        assert!(!to.join("stale").exists());
    }
}
