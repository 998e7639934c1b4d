#!/bin/bash
# Fill an array across MPI ranks, then reduce it across ranks: the batch flow
# of design.md's "Distributed" section under Open MPI's mpirun.
#
#   examples/mpi/reduce-job.sh [FILE [SHAPE [DTYPE [SEED]]]]
#   (defaults: data.npy 40000,24 f4 1)
#
# Environment:
#   MMRUN    the mmrun binary (default: mmrun on PATH). Every rank runs it, so
#            on several nodes it must be at the same path on all of them.
#   MPIRUN   the launcher command, split on spaces (default: mpirun). Add the
#            flags your site needs, e.g. `MPIRUN="mpirun --hostfile hosts"`;
#            on one machine with more ranks than cores, `--oversubscribe`;
#            as root, `--allow-run-as-root` (or export
#            OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1).
#   RANKS    number of ranks (default 4); WORKERS: local workers per rank
#            (default auto: the CPUs the rank may use).
#
# Steps, each a separate command, so a failed step can be rerun alone:
#   1. `mmrun create --pending FILE` builds the partial file and its journal,
#      once (ranks never create, resize or rename a file);
#   2. `mpirun mmrun fill FILE --distributed` — each rank fills its
#      64 KiB-aligned partition of the rows;
#   3. `mmrun commit FILE` publishes FILE once every rank is recorded done
#      (else exits 1 naming the ranks to rerun with --resume);
#   4. `mpirun mmrun reduce FILE --op mean --axis 0 --distributed --report
#      BASE.mean0-{rank}.json` — each rank reduces its share of the rows and
#      leaves its exact partial results in its own report ({rank} is filled
#      in by mmrun);
#   5. `mmrun report merge BASE.mean0-*.json --out BASE.mean0.npy` combines
#      the partials in mmrun's fixed tree: bit for bit what
#      `mmrun reduce FILE --op mean --axis 0 --out OUT` gives on one machine;
#   6. the mean of each row: `mmrun create --pending BASE.rowmean.npy`, ranks
#      write their rows of it with `reduce --axis rows --out ... --distributed`,
#      and `mmrun commit` publishes it. This output has one element per row,
#      and ranks split a file only at 64 KiB-aligned offsets, so this step
#      runs at most one rank per 64 KiB of it, plus one.
# BASE is FILE without `.npy`. The script replaces no existing file (mmrun
# refuses, exit 2): remove FILE and BASE.*.npy to run it again. Only
# BASE.mean0-*.json, its own reports, are removed before step 4, so a stale
# report of an earlier job cannot be merged into this one.
set -euo pipefail

FILE="${1:-data.npy}"
SHAPE="${2:-40000,24}"
DTYPE="${3:-f4}"
SEED="${4:-1}"
MMRUN="${MMRUN:-mmrun}"
RANKS="${RANKS:-4}"
WORKERS="${WORKERS:-auto}"
read -r -a LAUNCH <<< "${MPIRUN:-mpirun}"

BASE="${FILE%.npy}"
MEAN0="$BASE.mean0.npy"
ROWMEAN="$BASE.rowmean.npy"
ROWS="${SHAPE%%,*}"
ROWS="${ROWS#(}"
# np.mean keeps a float dtype and gives float64 for integers and bool.
case "$DTYPE" in
    f2 | float16 | '<f2') OUT_DTYPE="$DTYPE" OUT_ITEM=2 ;;
    f4 | float32 | '<f4') OUT_DTYPE="$DTYPE" OUT_ITEM=4 ;;
    *) OUT_DTYPE=f8 OUT_ITEM=8 ;;
esac
# Ranks split a file only at 64 KiB-aligned row starts, so nodes never share a
# page; the per-row result is small (one element per row), so it has room for
# fewer partitions than FILE: one per whole 64 KiB of its data, plus one.
ROW_RANKS=$(( ROWS * OUT_ITEM / 65536 + 1 ))
if [ "$ROW_RANKS" -gt "$RANKS" ]; then
    ROW_RANKS="$RANKS"
fi

say() { echo "reduce-job: $*" >&2; }

# Check the launcher and that ranks find mmrun before anything is created: a
# launcher that refuses (root without permission, too few slots) must not
# leave a pending file behind.
if ! "${LAUNCH[@]}" -n "$RANKS" "$MMRUN" --version > /dev/null; then
    say "'${LAUNCH[*]} -n $RANKS $MMRUN --version' failed: fix MPIRUN or MMRUN (see the top of $0)"
    exit 2
fi

say "1/6 create --pending $FILE ($SHAPE $DTYPE)"
"$MMRUN" create --pending "$FILE" --shape "$SHAPE" --dtype "$DTYPE"

say "2/6 $RANKS ranks fill $FILE"
"${LAUNCH[@]}" -n "$RANKS" "$MMRUN" fill "$FILE" --distributed \
    --random uniform --seed "$SEED" --workers "$WORKERS"

say "3/6 commit $FILE"
"$MMRUN" commit "$FILE"

say "4/6 $RANKS ranks reduce $FILE (mean over axis 0)"
rm -f "$BASE".mean0-*.json
"${LAUNCH[@]}" -n "$RANKS" "$MMRUN" reduce "$FILE" --op mean --axis 0 --distributed \
    --workers "$WORKERS" --report "$BASE.mean0-{rank}.json"

say "5/6 merge the ranks' partials into $MEAN0"
"$MMRUN" report merge "$BASE".mean0-*.json --out "$MEAN0"

say "6/6 $ROW_RANKS ranks write the mean of each row into $ROWMEAN"
"$MMRUN" create --pending "$ROWMEAN" --shape "$ROWS" --dtype "$OUT_DTYPE"
"${LAUNCH[@]}" -n "$ROW_RANKS" "$MMRUN" reduce "$FILE" --op mean --axis rows \
    --out "$ROWMEAN" --distributed --workers "$WORKERS"
"$MMRUN" commit "$ROWMEAN"

say "done: $FILE, $MEAN0 (mean over axis 0), $ROWMEAN (mean of each row)"
