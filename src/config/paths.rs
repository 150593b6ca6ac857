//! Paths named in configuration files: relative to the file's folder, normalized lexically.

use std::path::{Path, PathBuf};

/// `config/../templates` → `templates`, lexically (no file system access, symlinks untouched).
pub(super) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    let path: PathBuf = out.iter().collect();
    if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path
    }
}

/// `p` as written in the file at `config`: absolute as is, else from the file's folder.
pub(super) fn from_config_dir(config: &Path, p: &str) -> PathBuf {
    let base = config.parent().unwrap_or(Path::new("."));
    if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        normalize(&base.join(p))
    }
}
