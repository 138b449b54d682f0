//! The handler artifact: built for Linux with cargo-lambda, zipped as `bootstrap`, named by its
//! sha256; and the checks a given `--handler-zip` must pass before any AWS call.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, ValueEnum};
use sha2::{Digest, Sha256};

/// Lambda CPU architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Arch {
    #[default]
    Arm64,
    #[value(name = "x86_64")]
    X86_64,
}

impl Arch {
    /// The name CloudFormation and Lambda use.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::X86_64 => "x86_64",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PackageArgs {
    /// CPU architecture of the Lambda
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
    /// Where to write bootstrap.zip
    #[arg(long, default_value = "dist")]
    pub output_dir: PathBuf,
}

/// A handler zip that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Artifact {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

impl Artifact {
    /// The S3 key: content-addressed, so an unchanged handler is never uploaded twice.
    pub fn key(&self) -> String {
        format!("handler/{}.zip", self.sha256)
    }
}

impl std::fmt::Display for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} bytes, sha256 {})",
            self.path.display(),
            self.size,
            self.sha256
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot read the handler zip {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a zip file ({reason}); build one with `sgwatch package`")]
    NotZip { path: PathBuf, reason: String },
    #[error("{path} has no file named `bootstrap` at its top level; Lambda's provided.al2023 runtime runs `bootstrap`. Build it with `sgwatch package`")]
    NoBootstrap { path: PathBuf },
    #[error("`bootstrap` in {path} is not executable (mode {mode:o}); Lambda could not start it. Build it with `sgwatch package`")]
    NotExecutable { path: PathBuf, mode: u32 },
    #[error("building the handler failed: {0}")]
    Build(String),
}

/// Checks a handler zip: a zip, with an executable `bootstrap` at the top. Returns its hash.
pub fn check_zip(path: &Path) -> Result<Artifact, PackageError> {
    let bytes = std::fs::read(path).map_err(|source| PackageError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(&bytes)).map_err(|e| PackageError::NotZip {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let entry = archive
        .by_name("bootstrap")
        .map_err(|_| PackageError::NoBootstrap {
            path: path.to_owned(),
        })?;
    let mode = entry.unix_mode().unwrap_or(0);
    if mode & 0o111 == 0 {
        return Err(PackageError::NotExecutable {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(Artifact {
        path: path.to_owned(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

/// Zips `binary` as `bootstrap` (mode 0755) into `zip_path`.
pub fn zip_binary(binary: &Path, zip_path: &Path) -> Result<Artifact, PackageError> {
    let read = |source| PackageError::Read {
        path: binary.to_owned(),
        source,
    };
    let mut data = Vec::new();
    std::fs::File::open(binary)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(read)?;
    if let Some(dir) = zip_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| PackageError::Read {
            path: dir.to_owned(),
            source,
        })?;
    }
    let file = std::fs::File::create(zip_path).map_err(|source| PackageError::Read {
        path: zip_path.to_owned(),
        source,
    })?;
    let mut zip = zip::ZipWriter::new(file);
    // A fixed timestamp: the same binary always makes the same zip, hence the same sha256, the
    // same S3 key and no change to deploy.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o755);
    let io = |e: std::io::Error| PackageError::Read {
        path: zip_path.to_owned(),
        source: e,
    };
    zip.start_file("bootstrap", options)
        .map_err(|e| io(std::io::Error::other(e)))?;
    zip.write_all(&data).map_err(io)?;
    zip.finish().map_err(|e| io(std::io::Error::other(e)))?;
    check_zip(zip_path)
}

/// Builds the handler with cargo-lambda for `arch` and zips it into `output_dir`.
pub fn build(arch: Arch, output_dir: &Path) -> Result<Artifact, PackageError> {
    let workspace = workspace_root()?;
    let flag = match arch {
        Arch::Arm64 => "--arm64",
        Arch::X86_64 => "--x86-64",
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let lambda_dir = target.join("lambda");
    eprintln!(
        "building the handler for {} with cargo-lambda (the first build takes a few minutes)…",
        arch.as_str()
    );
    let mut cargo = Command::new("cargo");
    cargo
        .args(["lambda", "build", "--release", flag])
        .args([
            "-p",
            "sgwatch-handler",
            "--bin",
            "bootstrap",
            "--lambda-dir",
        ])
        .arg(&lambda_dir)
        .current_dir(&workspace);
    // PATH first; the project's virtualenv (where `make setup` puts cargo-lambda and zig) when
    // PATH has no cargo-lambda.
    let venv = workspace.join(".venv/bin");
    if !on_path("cargo-lambda") {
        if !venv.join("cargo-lambda").exists() {
            return Err(PackageError::Build(
                "cargo-lambda is not on PATH: install it (`pip install cargo-lambda`, or `make \
                 setup` for the project's .venv), or pass --handler-zip"
                    .into(),
            ));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined =
            std::env::join_paths(std::iter::once(venv).chain(std::env::split_paths(&path)))
                .map_err(|e| PackageError::Build(format!("PATH cannot be extended: {e}")))?;
        cargo.env("PATH", joined);
    }
    let status = cargo
        .status()
        .map_err(|e| PackageError::Build(format!("cannot run `cargo lambda build`: {e}")))?;
    if !status.success() {
        return Err(PackageError::Build(format!(
            "`cargo lambda build` exited with {status}; its output above says why"
        )));
    }
    zip_binary(
        &lambda_dir.join("bootstrap/bootstrap"),
        &output_dir.join("bootstrap.zip"),
    )
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The sgwatch source tree (package builds from source).
fn workspace_root() -> Result<PathBuf, PackageError> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cwd = std::env::current_dir().unwrap_or_default();
    [cwd, here]
        .into_iter()
        .find(|d| d.join("handler/Cargo.toml").exists())
        .ok_or_else(|| {
            PackageError::Build(
                "run `sgwatch package` from the sgwatch source tree, or pass --handler-zip"
                    .to_owned(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_as_executable_bootstrap_and_checks_it() {
        let dir = std::env::temp_dir().join(format!("sgwatch-pkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("bin");
        std::fs::write(&bin, b"#!/bin/sh\necho hi\n").unwrap();
        let a = zip_binary(&bin, &dir.join("out/bootstrap.zip")).unwrap();
        assert_eq!(a.sha256.len(), 64);
        assert_eq!(a.key(), format!("handler/{}.zip", a.sha256));
        assert_eq!(check_zip(&a.path).unwrap(), a);
        let again = zip_binary(&bin, &dir.join("again/bootstrap.zip")).unwrap();
        assert_eq!(again.sha256, a.sha256, "the same binary makes the same zip");

        std::fs::write(dir.join("not.zip"), b"hello").unwrap();
        assert!(matches!(
            check_zip(&dir.join("not.zip")),
            Err(PackageError::NotZip { .. })
        ));
        let mut z = zip::ZipWriter::new(std::fs::File::create(dir.join("other.zip")).unwrap());
        z.start_file("main", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.finish().unwrap();
        assert!(matches!(
            check_zip(&dir.join("other.zip")),
            Err(PackageError::NoBootstrap { .. })
        ));
        let mut z = zip::ZipWriter::new(std::fs::File::create(dir.join("noexec.zip")).unwrap());
        z.start_file(
            "bootstrap",
            zip::write::SimpleFileOptions::default().unix_permissions(0o644),
        )
        .unwrap();
        z.finish().unwrap();
        assert!(matches!(
            check_zip(&dir.join("noexec.zip")),
            Err(PackageError::NotExecutable { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
