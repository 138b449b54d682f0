//! The handler artifact: built for Linux with cargo-lambda, zipped as `bootstrap`, named by its
//! sha256; and the checks a given `--handler-zip` must pass before any AWS call.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, ValueEnum};
use sha2::{Digest, Sha256};

/// Lambda CPU architectures (also a key of rollout's targets file: `arch: x86_64`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Arch {
    #[default]
    #[serde(rename = "arm64")]
    Arm64,
    #[value(name = "x86_64")]
    #[serde(rename = "x86_64")]
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

    /// The ELF `e_machine` of a binary built for it (System V ABI: EM_AARCH64 is 183, EM_X86_64
    /// is 62).
    fn elf_machine(self) -> u16 {
        match self {
            Arch::Arm64 => 0xB7,
            Arch::X86_64 => 0x3E,
        }
    }

    fn from_elf_machine(machine: u16) -> Option<Arch> {
        [Arch::Arm64, Arch::X86_64]
            .into_iter()
            .find(|a| a.elf_machine() == machine)
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
    #[error(
        "`bootstrap` in {path} is built for {found}, but the function would run on {wanted}: \
         Lambda would fail at the first invocation. {hint}"
    )]
    WrongArch {
        path: PathBuf,
        found: String,
        wanted: &'static str,
        /// What to do: the matching `--arch`, or a rebuild.
        hint: String,
    },
    #[error(
        "`bootstrap` in {path} is {what}, which Lambda's provided.al2023 runtime cannot run on \
         {wanted}. Build it with `sgwatch package --arch {wanted}`"
    )]
    NotLinuxExecutable {
        path: PathBuf,
        what: &'static str,
        wanted: &'static str,
    },
    #[error("building the handler failed: {0}")]
    Build(String),
    #[error("{path} has no executable `act` beside `bootstrap`: --act-links on runs it as the act function. Build the zip with `sgwatch package`")]
    NoAct { path: PathBuf },
}

/// Checks a handler zip: a zip, with an executable `bootstrap` at the top that runs on `arch`.
/// Returns its hash.
pub fn check_zip(path: &Path, arch: Arch) -> Result<Artifact, PackageError> {
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
    // The ELF header is the first 64 bytes; fewer when the file is shorter (a script).
    let mut head = Vec::with_capacity(64);
    entry
        .take(64)
        .read_to_end(&mut head)
        .map_err(|source| PackageError::Read {
            path: path.to_owned(),
            source,
        })?;
    check_machine(&head, arch).map_err(|e| e.at(path, arch))?;
    Ok(Artifact {
        path: path.to_owned(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

/// What is wrong with a `bootstrap` for an architecture, before the zip's path is known.
#[derive(Debug, PartialEq, Eq)]
enum Mismatch {
    Machine(u16),
    NotRunnable(&'static str),
}

impl Mismatch {
    fn at(self, path: &Path, wanted: Arch) -> PackageError {
        match self {
            Mismatch::Machine(machine) => {
                let rebuild = format!(
                    "build it for {} with `sgwatch package --arch {}`",
                    wanted.as_str(),
                    wanted.as_str()
                );
                let (found, hint) = match Arch::from_elf_machine(machine) {
                    Some(a) => (
                        a.as_str().to_owned(),
                        format!("Pass --arch {}, or {rebuild}", a.as_str()),
                    ),
                    None => (
                        format!("ELF machine {machine:#x}, which Lambda does not run"),
                        format!("Rebuild it: {rebuild}"),
                    ),
                };
                PackageError::WrongArch {
                    path: path.to_owned(),
                    found,
                    wanted: wanted.as_str(),
                    hint,
                }
            }
            Mismatch::NotRunnable(what) => PackageError::NotLinuxExecutable {
                path: path.to_owned(),
                what,
                wanted: wanted.as_str(),
            },
        }
    }
}

/// Whether a `bootstrap` starting with `head` runs on `arch`. An ELF binary must be 64-bit,
/// little-endian and for `arch`'s machine; a `#!` script runs on either (the runtime's
/// interpreter). Anything else cannot be executed. (ELF header layout: System V ABI, "ELF
/// Header": magic at 0, EI_CLASS at 4, EI_DATA at 5, e_machine at 18.)
fn check_machine(head: &[u8], arch: Arch) -> Result<(), Mismatch> {
    if head.starts_with(b"#!") {
        return Ok(());
    }
    if !head.starts_with(b"\x7fELF") {
        return Err(Mismatch::NotRunnable(
            "neither an ELF binary nor a #! script",
        ));
    }
    if head.len() < 20 {
        return Err(Mismatch::NotRunnable("a truncated ELF file"));
    }
    if head[4] != 2 {
        return Err(Mismatch::NotRunnable("a 32-bit ELF binary"));
    }
    if head[5] != 1 {
        return Err(Mismatch::NotRunnable("a big-endian ELF binary"));
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if machine != arch.elf_machine() {
        return Err(Mismatch::Machine(machine));
    }
    Ok(())
}

/// Zips `binary` as `bootstrap` (mode 0755) into `zip_path`, and checks it runs on `arch`.
pub fn zip_binary(binary: &Path, zip_path: &Path, arch: Arch) -> Result<Artifact, PackageError> {
    zip_binaries(&[("bootstrap", binary)], zip_path, arch)
}

/// Zips each `(name, binary)` (mode 0755) into `zip_path`, and checks its `bootstrap` runs on
/// `arch`.
pub fn zip_binaries(
    binaries: &[(&str, &Path)],
    zip_path: &Path,
    arch: Arch,
) -> Result<Artifact, PackageError> {
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
    for (name, binary) in binaries {
        let mut data = Vec::new();
        std::fs::File::open(binary)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|source| PackageError::Read {
                path: binary.to_path_buf(),
                source,
            })?;
        zip.start_file(*name, options)
            .map_err(|e| io(std::io::Error::other(e)))?;
        zip.write_all(&data).map_err(io)?;
    }
    zip.finish().map_err(|e| io(std::io::Error::other(e)))?;
    check_zip(zip_path, arch)
}

/// Checks that a handler zip also holds the `act` function's binary (`act`, executable), which
/// `--act-links on` deploys from the same zip.
pub fn check_act(path: &Path) -> Result<(), PackageError> {
    let bytes = std::fs::read(path).map_err(|source| PackageError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(&bytes)).map_err(|e| PackageError::NotZip {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let executable = archive
        .by_name("act")
        .ok()
        .and_then(|e| e.unix_mode())
        .is_some_and(|mode| mode & 0o111 != 0);
    if !executable {
        return Err(PackageError::NoAct {
            path: path.to_owned(),
        });
    }
    Ok(())
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
            "--bin",
            "act",
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
    // One zip for both functions: the handler signs the links that act checks, so they are
    // always one build. Lambda runs `bootstrap`; the act function's starts `act` (its handler).
    zip_binaries(
        &[
            ("bootstrap", &lambda_dir.join("bootstrap/bootstrap")),
            ("act", &lambda_dir.join("act/bootstrap")),
        ],
        &output_dir.join("bootstrap.zip"),
        arch,
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
        let a = zip_binary(&bin, &dir.join("out/bootstrap.zip"), Arch::Arm64).unwrap();
        assert_eq!(a.sha256.len(), 64);
        assert_eq!(a.key(), format!("handler/{}.zip", a.sha256));
        assert_eq!(check_zip(&a.path, Arch::Arm64).unwrap(), a);
        let again = zip_binary(&bin, &dir.join("again/bootstrap.zip"), Arch::Arm64).unwrap();
        assert_eq!(again.sha256, a.sha256, "the same binary makes the same zip");

        std::fs::write(dir.join("not.zip"), b"hello").unwrap();
        assert!(matches!(
            check_zip(&dir.join("not.zip"), Arch::Arm64),
            Err(PackageError::NotZip { .. })
        ));
        let mut z = zip::ZipWriter::new(std::fs::File::create(dir.join("other.zip")).unwrap());
        z.start_file("main", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.finish().unwrap();
        assert!(matches!(
            check_zip(&dir.join("other.zip"), Arch::Arm64),
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
            check_zip(&dir.join("noexec.zip"), Arch::Arm64),
            Err(PackageError::NotExecutable { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The first 20 bytes of a Linux ELF header: magic, class, data, version, OS ABI, padding,
    /// e_type (executable), e_machine.
    fn elf(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0];
        h.extend([0; 8]);
        h.extend(2u16.to_le_bytes());
        h.extend(machine.to_le_bytes());
        h.extend([0; 44]); // the rest of a 64-byte header
        h
    }

    #[test]
    fn the_elf_machine_must_match_the_architecture() {
        let arm = elf(2, 1, 0xB7);
        let x86 = elf(2, 1, 0x3E);
        assert_eq!(check_machine(&arm, Arch::Arm64), Ok(()));
        assert_eq!(check_machine(&x86, Arch::X86_64), Ok(()));
        assert_eq!(
            check_machine(&x86, Arch::Arm64),
            Err(Mismatch::Machine(0x3E))
        );
        assert_eq!(
            check_machine(&arm, Arch::X86_64),
            Err(Mismatch::Machine(0xB7))
        );
        // RISC-V (0xF3): no Lambda architecture at all.
        assert_eq!(
            check_machine(&elf(2, 1, 0xF3), Arch::Arm64),
            Err(Mismatch::Machine(0xF3))
        );
    }

    #[test]
    fn only_64_bit_little_endian_elf_and_scripts_run() {
        assert!(check_machine(b"#!/bin/sh\nexec ./handler\n", Arch::X86_64).is_ok());
        assert!(check_machine(b"#!/bin/sh\n", Arch::Arm64).is_ok());
        for (head, what) in [
            (elf(1, 1, 0x28), "a 32-bit ELF binary"),
            (elf(2, 2, 0xB7), "a big-endian ELF binary"),
            (b"\x7fELF\x02\x01".to_vec(), "a truncated ELF file"),
            (
                b"MZ\x90\x00".to_vec(),
                "neither an ELF binary nor a #! script",
            ),
            (Vec::new(), "neither an ELF binary nor a #! script"),
        ] {
            assert_eq!(
                check_machine(&head, Arch::Arm64),
                Err(Mismatch::NotRunnable(what))
            );
        }
    }

    #[test]
    fn a_zip_built_for_the_other_architecture_is_refused_with_what_to_do() {
        let dir = std::env::temp_dir().join(format!("sgwatch-arch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("x86");
        std::fs::write(&bin, elf(2, 1, 0x3E)).unwrap();
        let zipped = zip_binary(&bin, &dir.join("x86.zip"), Arch::X86_64).unwrap();
        assert_eq!(check_zip(&zipped.path, Arch::X86_64).unwrap(), zipped);

        let err = check_zip(&zipped.path, Arch::Arm64).unwrap_err();
        assert!(matches!(err, PackageError::WrongArch { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("built for x86_64")
                && text.contains("run on arm64")
                && text.contains("--arch x86_64"),
            "{text}"
        );
        // zip_binary checks what it wrote, so `package` cannot produce a mismatched zip either.
        assert!(matches!(
            zip_binary(&bin, &dir.join("again.zip"), Arch::Arm64),
            Err(PackageError::WrongArch { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
