//! The data directory: where each file lives, private permissions (0700 directory, 0600 files),
//! the trash for purged file sets, and the lock a running server holds.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::crypto;
use crate::domain::TenantId;
use crate::error::{Error, Result};

/// The `tenants/` directory and the paths inside it.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// Suffixes of the files SQLite keeps beside a database.
pub const SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

impl DataDir {
    /// Opens the directory, creating it (and its trash) with mode 0700 when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        create_private_dir(&root)?;
        let dir = Self { root };
        create_private_dir(&dir.trash_dir())?;
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.root.join("catalog.db")
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.root.join("keyring.db")
    }

    /// `<root>/<tenant-id>.db`; a `TenantId` cannot name anything outside the directory.
    pub fn tenant_path(&self, tenant: &TenantId) -> PathBuf {
        self.root.join(format!("{tenant}.db"))
    }

    pub fn trash_dir(&self) -> PathBuf {
        self.root.join(".trash")
    }

    /// Moves a database and its side files into the trash (each a same-filesystem rename) and
    /// returns the moved paths, for [`remove_files`] to unlink later.
    pub fn move_to_trash(&self, db: &Path) -> Result<Vec<PathBuf>> {
        let tag = hex::encode(crypto::random_bytes::<8>());
        let name = db.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let mut moved = Vec::new();
        // Side files first: a crash in between leaves a whole database, never a stray WAL that a
        // fresh file at the same path could pick up.
        for suffix in SIDE_FILES.iter().copied().chain([""]) {
            let from = PathBuf::from(format!("{}{suffix}", db.display()));
            let to = self.trash_dir().join(format!("{name}.{tag}{suffix}"));
            match std::fs::rename(&from, &to) {
                Ok(()) => moved.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(moved)
    }

    /// Unlinks whatever an earlier run left in the trash.
    pub fn empty_trash(&self) {
        if let Ok(entries) = std::fs::read_dir(self.trash_dir()) {
            remove_files(entries.flatten().map(|e| e.path()).collect());
        }
    }

    /// Takes the server lock; fails if another server already runs on this directory.
    pub fn lock_for_server(&self) -> Result<File> {
        let file = create_or_open_private(&self.root.join(".server.lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(_) => Err(Error::Conflict(format!(
                "another chatvault server is running on {}",
                self.root.display()
            ))),
        }
    }

    /// Refuses offline maintenance (purge, delete, rekey, rotate, restore) while a server runs.
    pub fn ensure_no_server(&self) -> Result<()> {
        let path = self.root.join(".server.lock");
        if !path.exists() {
            return Ok(());
        }
        let file = File::open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::Conflict(format!(
                "a running chatvault server holds {}; stop it first, or use the HTTP API",
                self.root.display()
            ))),
        }
    }
}

/// Creates a directory (and parents) and sets it to 0700.
pub fn create_private_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Opens a file for writing, creating it with mode 0600 when missing.
pub fn create_or_open_private(path: &Path) -> Result<File> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?)
}

/// Unlinks files in the background: once their keys are destroyed the bytes are unreadable, so
/// the caller need not wait for the filesystem.
pub fn remove_files(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let unlink = move || {
        for path in paths {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "could not unlink a trashed file");
            }
        }
    };
    if std::thread::Builder::new()
        .name("trash".into())
        .spawn(unlink)
        .is_err()
    {
        tracing::warn!("could not start the trash thread; files stay in .trash until next start");
    }
}

/// Flushes a directory's entries (new names, renames) to disk.
pub fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)?.sync_all()?;
    Ok(())
}
