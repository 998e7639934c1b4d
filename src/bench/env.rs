//! The environment block of a bench report: what a figure depends on besides
//! mmrun — kernel, CPU, file system and its mount options, transparent huge
//! pages, page size, and how mmrun itself was built.
//!
//! Everything is read from `/proc` and `/sys` (and `uname`, `sysconf`) before
//! the first sample; a value that cannot be read is `"unknown"`, never an
//! error, so a locked-down container can still bench. The parsers are pure
//! functions of the text, tested on fixed inputs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Cache;

/// Where and how the measurements were taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Machine architecture (`uname -m`).
    pub arch: String,
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// CPUs this process may use (affinity mask, cgroup quota).
    pub nproc: usize,
    /// Host name.
    pub hostname: String,
    /// Page size in bytes.
    pub page_size: u64,
    /// Transparent huge pages mode (`/sys/kernel/mm/transparent_hugepage/enabled`).
    pub thp: String,
    /// The file system holding the bench directory.
    pub fs: FsInfo,
    /// mmrun's version.
    pub mmrun_version: String,
    /// `release` or `debug` (whether debug assertions are on).
    pub build_profile: String,
    /// Page-cache policy between samples, and what was actually done.
    pub cache: CacheInfo,
    /// How the plain mmap writer reserved space: `fallocate`, or `sparse`
    /// where the file system cannot.
    pub reserve: String,
}

/// The mount that holds the bench directory (`/proc/self/mountinfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsInfo {
    /// The bench directory, resolved.
    pub dir: PathBuf,
    /// Mount point (longest prefix of `dir`).
    pub mount_point: String,
    /// File-system type, e.g. `ext4`, `xfs`, `tmpfs`, `lustre`.
    pub fs_type: String,
    /// Mount source (device or server).
    pub source: String,
    /// Per-mount options, e.g. `rw,relatime`.
    pub mount_options: String,
    /// Per-superblock options, e.g. `rw,seclabel,inode64`.
    pub super_options: String,
}

/// The cache policy and what was done for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInfo {
    /// `warm` or `cold`.
    pub mode: Cache,
    /// What was done between samples, in words.
    pub method: String,
}

const UNKNOWN: &str = "unknown";

impl Environment {
    /// Reads the environment of a bench in `dir` (already resolved).
    pub fn detect(dir: &Path, cache: Cache) -> Environment {
        let (kernel, arch) = match nix::sys::utsname::uname() {
            Ok(u) => (
                u.release().to_string_lossy().into_owned(),
                u.machine().to_string_lossy().into_owned(),
            ),
            Err(_) => (UNKNOWN.into(), UNKNOWN.into()),
        };
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let fs = find_mount(&read("/proc/self/mountinfo"), dir).unwrap_or_else(|| FsInfo {
            dir: dir.to_path_buf(),
            mount_point: UNKNOWN.into(),
            fs_type: UNKNOWN.into(),
            source: UNKNOWN.into(),
            mount_options: UNKNOWN.into(),
            super_options: UNKNOWN.into(),
        });
        Environment {
            kernel,
            arch,
            cpu: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| UNKNOWN.into()),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hostname: crate::os::hostname(),
            page_size: page_size(),
            thp: thp_mode(&read("/sys/kernel/mm/transparent_hugepage/enabled"))
                .unwrap_or_else(|| UNKNOWN.into()),
            fs,
            mmrun_version: env!("CARGO_PKG_VERSION").into(),
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
            cache: CacheInfo {
                mode: cache,
                method: String::new(),
            },
            reserve: String::new(),
        }
    }
}

/// The system page size (4096 where `sysconf` cannot say).
pub(super) fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096)
}

/// The CPU model from `/proc/cpuinfo`: x86's `model name`, else the fields
/// other architectures use.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    for key in [
        "model name",
        "Model",
        "Hardware",
        "cpu model",
        "cpu",
        "Processor",
    ] {
        let found = cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_string())
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The selected mode in `always [madvise] never`.
fn thp_mode(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

/// The mount holding `dir`: the longest mount point that is a prefix of it
/// (by path components); among equal ones, the last (it is on top).
fn find_mount(mountinfo: &str, dir: &Path) -> Option<FsInfo> {
    let mut best: Option<(usize, FsInfo)> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - type source super-options
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|&f| f == "-") else {
            continue;
        };
        if fields.len() < 6 || fields.len() < dash + 3 {
            continue;
        }
        let point = unescape(fields[4]);
        if !dir.starts_with(&point) {
            continue;
        }
        let depth = Path::new(&point).components().count();
        if best.as_ref().is_some_and(|(d, _)| *d > depth) {
            continue;
        }
        best = Some((
            depth,
            FsInfo {
                dir: dir.to_path_buf(),
                mount_point: point,
                fs_type: unescape(fields[dash + 1]),
                source: unescape(fields[dash + 2]),
                mount_options: fields[5].to_string(),
                super_options: fields.get(dash + 3).map_or(String::new(), |s| unescape(s)),
            },
        ));
    }
    best.map(|(_, fs)| fs)
}

/// Undoes mountinfo's octal escapes (`\040` is a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
25 22 0:23 / /scratch rw,nosuid,nodev shared:7 - xfs /dev/md0 rw,attr2,inode64
26 25 0:24 / /scratch/fast rw,noatime - tmpfs tmpfs rw,size=8g
27 22 0:25 / /scratchy rw - nfs server:/x rw,vers=4.2
28 22 0:26 / /my\\040disk rw shared:9 master:2 - btrfs /dev/sdb1 rw,ssd
29 25 0:27 / /scratch/fast rw,relatime - overlay overlay rw,lowerdir=/a
";

    #[test]
    fn longest_mount_point_prefix_wins() {
        let m = find_mount(MOUNTINFO, Path::new("/scratch/job/1")).unwrap();
        assert_eq!(m.mount_point, "/scratch");
        assert_eq!(m.fs_type, "xfs");
        assert_eq!(m.source, "/dev/md0");
        assert_eq!(m.mount_options, "rw,nosuid,nodev");
        assert_eq!(m.super_options, "rw,attr2,inode64");
        // A sibling whose name shares a prefix is not a parent.
        assert_eq!(
            find_mount(MOUNTINFO, Path::new("/scratchy/a"))
                .unwrap()
                .fs_type,
            "nfs"
        );
        assert_eq!(
            find_mount(MOUNTINFO, Path::new("/home/me"))
                .unwrap()
                .fs_type,
            "ext4"
        );
    }

    #[test]
    fn the_mount_on_top_wins_and_escapes_are_undone() {
        let m = find_mount(MOUNTINFO, Path::new("/scratch/fast")).unwrap();
        assert_eq!(
            (m.fs_type.as_str(), m.mount_options.as_str()),
            ("overlay", "rw,relatime")
        );
        let m = find_mount(MOUNTINFO, Path::new("/my disk/x")).unwrap();
        assert_eq!(
            (m.mount_point.as_str(), m.fs_type.as_str()),
            ("/my disk", "btrfs")
        );
        assert!(find_mount("garbage\n", Path::new("/")).is_none());
    }

    #[test]
    fn cpu_thp_and_this_machine() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n";
        assert_eq!(
            cpu_model(x86).unwrap(),
            "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
        );
        assert_eq!(
            cpu_model("processor\t: 0\nHardware\t: BCM2835\n").unwrap(),
            "BCM2835"
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(thp_mode("always [madvise] never\n").unwrap(), "madvise");
        assert_eq!(thp_mode(""), None);
        let env = Environment::detect(Path::new("/"), Cache::Warm);
        assert!(env.page_size >= 4096);
        assert!(env.nproc >= 1);
        assert_eq!(env.mmrun_version, env!("CARGO_PKG_VERSION"));
    }
}
