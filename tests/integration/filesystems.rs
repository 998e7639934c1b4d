//! The file systems users have: fill, apply in place, resume and a full
//! disk on loop-mounted XFS and Btrfs and on a size-limited tmpfs, each
//! checked byte for byte against the same commands in the default temporary
//! directory. Needs root (mount) and `mkfs.xfs`/`mkfs.btrfs` (xfsprogs,
//! btrfs-progs: `scripts/test.sh` installs them); without them a test
//! reports itself missing (a failure under `CI=true`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, Dir};

/// A file system mounted for one test, unmounted (and its image removed)
/// at drop.
struct Mounted {
    at: PathBuf,
    _base: tempfile::TempDir,
}

impl Mounted {
    /// Mounts a fresh `kind` (`xfs`, `btrfs` or `tmpfs`) of `mib` MiB.
    fn new(test: &str, kind: &str, mib: u64) -> Option<Mounted> {
        if !util::is_root() {
            util::missing_tool(test, "root (to mount a file system)");
            return None;
        }
        let base = tempfile::tempdir().unwrap();
        let at = base.path().join("mnt");
        fs::create_dir(&at).unwrap();
        let (what, opts): (PathBuf, String) = if kind == "tmpfs" {
            ("tmpfs".into(), format!("size={mib}m"))
        } else {
            let mkfs = format!("mkfs.{kind}");
            let image = base.path().join("image");
            fs::File::create(&image)
                .unwrap()
                .set_len(mib << 20)
                .unwrap();
            let made = Command::new(&mkfs).args(["-q", "-f"]).arg(&image).output();
            match made {
                Ok(o) if o.status.success() => {}
                Ok(o) => panic!("{mkfs}: {}", util::stderr(&o)),
                Err(_) => {
                    util::missing_tool(
                        test,
                        &format!("{mkfs} (xfsprogs/btrfs-progs; scripts/test.sh installs them)"),
                    );
                    return None;
                }
            }
            (image, "loop".into())
        };
        let out = Command::new("mount")
            .args(["-t", kind, "-o", &opts])
            .arg(&what)
            .arg(&at)
            .output()
            .expect("run mount");
        if !out.status.success() {
            util::missing_tool(
                test,
                &format!("mounting {kind} ({})", util::stderr(&out).trim()),
            );
            return None;
        }
        Some(Mounted { at, _base: base })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).output();
    }
}

const SHAPE: &str = "1536,1024";

fn same(a: &Path, b: &Path) {
    let (x, y) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    assert!(
        x == y,
        "{} differs from {} ({} vs {} bytes)",
        a.display(),
        b.display(),
        x.len(),
        y.len()
    );
}

/// Runs `args` in both directories and expects success in both.
fn both(on: &Dir, reference: &Dir, args: &[&str]) {
    on.ok(args);
    reference.ok(args);
}

fn fill_apply_resume_and_full_disk(kind: &str, mib: u64) {
    let test = format!("{kind}_fill_apply_resume_and_full_disk");
    let Some(m) = Mounted::new(&test, kind, mib) else {
        return;
    };
    let d = Dir::new_in(&m.at);
    let r = Dir::new();
    // A new file, then in place.
    let fill = [
        "fill", "a.npy", "--shape", SHAPE, "--dtype", "f4", "--random", "normal", "--seed", "9",
        "-w", "3",
    ];
    let mut json = fill.to_vec();
    json.push("--json");
    let out = d.ok(&json);
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["filesystem"], kind, "a.npy is not on {kind}");
    r.ok(&fill);
    same(&d.join("a.npy"), &r.join("a.npy"));
    both(
        &d,
        &r,
        &["apply", "a.npy", "--expr", "x * 2 + 1", "-w", "2"],
    );
    same(&d.join("a.npy"), &r.join("a.npy"));

    // Resume: worker 2 dies after its first block; --resume finishes.
    d.ok(&[
        "fill", "x.npy", "--shape", SHAPE, "--dtype", "f4", "--value", "1",
    ]);
    let run = [
        "fill", "x.npy", "--random", "normal", "--seed", "9", "-w", "3",
    ];
    let out = d
        .cmd(&run)
        .env("__MMRUN_TEST_WORKER_FAULT", "2:kill@1100")
        .output()
        .unwrap();
    util::assert_refused(&out, 1, "KILL");
    let mut resume = run.to_vec();
    resume.push("--resume");
    d.ok(&resume);
    r.ok(&[
        "fill", "x.npy", "--shape", SHAPE, "--dtype", "f4", "--random", "normal", "--seed", "9",
    ]);
    same(&d.join("x.npy"), &r.join("x.npy"));

    // Full disk: a new file larger than the file system is refused before
    // any work, and nothing is left.
    let before = d.snapshot();
    let rows = ((mib + 64) << 20) / 4096;
    let out = d.run(&[
        "fill",
        "big.npy",
        "--shape",
        &format!("{rows},1024"),
        "--dtype",
        "f4",
        "--value",
        "1",
    ]);
    util::assert_refused(&out, 2, "space");
    assert_eq!(before, d.snapshot(), "a refused fill left files on {kind}");
}

#[test]
fn xfs_fill_apply_resume_and_full_disk() {
    fill_apply_resume_and_full_disk("xfs", 320);
}

#[test]
fn btrfs_fill_apply_resume_and_full_disk() {
    fill_apply_resume_and_full_disk("btrfs", 160);
}

#[test]
fn tmpfs_fill_apply_resume_and_full_disk() {
    fill_apply_resume_and_full_disk("tmpfs", 48);
}

/// Btrfs copies every block it rewrites, so an in-place apply needs free
/// space even though the file's blocks exist. Today, on a nearly full Btrfs,
/// every worker died of SIGBUS halfway and the file was left half
/// rewritten (and `x * 2` cannot be resumed). Now it is refused before any
/// work, naming the space it needs; the file is unchanged; rows that fit
/// still run.
#[test]
fn btrfs_in_place_apply_without_room_to_copy_is_refused_unchanged() {
    let test = "btrfs_in_place_apply_without_room_to_copy_is_refused_unchanged";
    let Some(m) = Mounted::new(test, "btrfs", 160) else {
        return;
    };
    let d = Dir::new_in(&m.at);
    let st = nix::sys::statvfs::statvfs(&m.at).unwrap();
    let avail = st.blocks_available() as u64 * st.fragment_size() as u64;
    // A file of about 80% of the free space: rewriting it cannot fit.
    let rows = avail * 4 / 5 / 4096;
    d.ok(&[
        "fill",
        "c.npy",
        "--shape",
        &format!("{rows},1024"),
        "--dtype",
        "f4",
        "--value",
        "1",
    ]);
    let before = d.snapshot();
    let out = d.run(&["apply", "c.npy", "--expr", "x * 2"]);
    util::assert_refused(&out, 2, "btrfs copies every block rewritten in place");
    assert!(
        util::stderr(&out).contains("--out"),
        "{}",
        util::stderr(&out)
    );
    assert_eq!(before, d.snapshot(), "a refused apply changed files");
    // A few rows fit.
    d.ok(&["apply", "c.npy", "--expr", "x * 2", "--rows", "0:16"]);
    d.ok(&["verify", "c.npy", "--rows", "0:16", "--value", "2"]);
}

/// Another process takes the space after mmrun's copy-on-write check: an
/// in-place apply on Btrfs then runs out of space while its workers store
/// through the mapping, which is a SIGBUS. Today that read "I/O error ...
/// (SIGBUS: the file was truncated or the device failed)"; now it is exit
/// 1 naming the rows and ENOSPC, the journal keeps the rows done, and once
/// there is room `--resume` finishes the file as an undisturbed run does.
#[test]
fn btrfs_space_taken_mid_apply_is_named_enospc_and_resumes() {
    use std::io::Write;
    let test = "btrfs_space_taken_mid_apply_is_named_enospc_and_resumes";
    let Some(m) = Mounted::new(test, "btrfs", 160) else {
        return;
    };
    let d = Dir::new_in(&m.at);
    let r = Dir::new();
    let st = nix::sys::statvfs::statvfs(&m.at).unwrap();
    let avail = st.blocks_available() as u64 * st.fragment_size() as u64;
    // A file of about a third of the free space: the check lets its
    // rewrite run.
    let shape = format!("{},1024", avail / 3 / 4096);
    let fill = [
        "fill", "c.npy", "--shape", &shape, "--dtype", "f4", "--value", "1",
    ];
    d.ok(&fill);
    r.ok(&fill);
    let apply = ["apply", "c.npy", "--expr", "i * 1024 + j", "-w", "2"];
    // The workers wait at `go` (off the full file system) until the disk
    // is full.
    let go = r.join("go");
    let child = d
        .cmd(&apply)
        .env("__MMRUN_TEST_WORKER_WAIT", &go)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = r.join("go.waiting");
    while !waiting.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut filler = fs::File::create(m.at.join("filler")).unwrap();
    let chunk = vec![7u8; 1 << 20];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
    fs::write(&go, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    util::assert_refused(
        &out,
        1,
        "no space left on btrfs while writing through the mapping (SIGBUS",
    );
    let err = util::stderr(&out);
    assert!(err.contains(": rows "), "the rows are not named: {err}");
    assert!(
        !err.contains("truncated or the device failed"),
        "ENOSPC reported as an I/O error: {err}"
    );
    // Room again: the journal's rows done stay, the rest is resumed.
    drop(filler);
    fs::remove_file(m.at.join("filler")).unwrap();
    fs::remove_file(&go).unwrap();
    let _ = Command::new("sync").arg("-f").arg(&m.at).status();
    let mut resume = apply.to_vec();
    resume.push("--resume");
    d.ok(&resume);
    r.ok(&apply);
    same(&d.join("c.npy"), &r.join("c.npy"));
}
