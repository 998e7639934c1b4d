#!/usr/bin/env bash
# Installs what mmrun's tests need and runs every test:
#   - a Python virtual environment in .venv with NumPy and jsonschema (a system Python may
#     refuse global pip installs; Debian needs python3-venv for venvs),
#   - xfsprogs and btrfs-progs (loop-mounted file systems), a C compiler,
#   - Open MPI and slurm-wlm (apt-get), with a single-node Slurm started
#     for the distributed tests and stopped at the end,
#   - formatting and lint checks, then `cargo test` (unit, property,
#     integration and doc tests).
# Tests that need a missing tool fail when CI=true and print SKIP otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "scripts/test.sh: please install: $*" >&2
        return 1
    fi
}

command -v python3 >/dev/null || apt_install python3 python3-venv
if ! .venv/bin/python -c 'import numpy, jsonschema' 2>/dev/null; then
    rm -rf .venv
    python3 -m venv .venv 2>/dev/null || { apt_install python3-venv && python3 -m venv .venv; }
    .venv/bin/python -m pip install --quiet --disable-pip-version-check 'numpy>=2' jsonschema
fi
command -v setpriv >/dev/null || apt_install util-linux
# Loop-mounted XFS and Btrfs for tests/integration/filesystems.rs; cc builds
# the NFS lock shim of tests/integration/clusters.rs.
command -v mkfs.xfs >/dev/null || apt_install xfsprogs
command -v mkfs.btrfs >/dev/null || apt_install btrfs-progs
command -v cc >/dev/null || apt_install gcc
command -v strace >/dev/null || apt_install strace
export MMRUN_TEST_PYTHON="$PWD/.venv/bin/python"

cargo fmt --all -- --check
cargo clippy --all-targets --locked --quiet -- -D warnings
cargo clippy --lib --features python --locked --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items --locked --quiet
# Open MPI and a single-node Slurm for the distributed tests (installed once).
./scripts/launchers.sh setup
trap './scripts/launchers.sh teardown' EXIT
cargo test --locked
# The library examples, run as a user runs them: each checks its own result
# and exits non-zero when it is wrong.
examples_dir="$(mktemp -d)"
for ex in fill_closure custom_kernel reduction; do
    cargo run --locked --quiet --example "$ex" -- "$examples_dir/$ex.npy" >/dev/null
done
rm -rf "$examples_dir"
# The Python package (pyproject.toml, python/): `pip wheel .` builds the
# wheel (maturin; the dev profile keeps this to a build of minutes), which
# installs offline (--no-index) into a fresh venv; pytest then checks every
# API function, map_rows, errors, Ctrl-C and resume against that install.
python_venv="$PWD/.venv-python"
rm -rf "$python_venv" dist
python3 -m venv "$python_venv"
"$python_venv/bin/python" -m pip install --quiet --disable-pip-version-check 'numpy>=2' pytest
MATURIN_PEP517_ARGS="--profile dev" "$python_venv/bin/python" -m pip wheel --quiet \
    --disable-pip-version-check --no-deps -w dist .
"$python_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index dist/mmrun-*.whl
(cd python/tests && PATH="$python_venv/bin:$PATH" "$python_venv/bin/python" -m pytest -q -p no:cacheprovider .)
