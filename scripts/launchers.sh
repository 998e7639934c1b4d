#!/usr/bin/env bash
# Starts (and stops) the real launchers that mmrun's rank-mode tests use:
#   - Open MPI (`mpirun`), from Debian's openmpi-bin;
#   - Slurm as a single-node cluster on this machine: Debian's slurm-wlm, a
#     generated slurm.conf with this host as the only node (CPUs=$(nproc) —
#     a mismatch drains the node and every srun waits forever),
#     select/cons_tres, proctrack/linuxproc, task/none, auth/none + cred/none
#     where this Slurm has them (else munge), and every state, spool, log and
#     pid file in one temp directory.
#
#   scripts/launchers.sh setup      install what is missing, start slurmctld
#                                   and slurmd, wait until the node is idle,
#                                   write $MMRUN_SLURM_DIR/env (idempotent: a
#                                   running, idle cluster is left as it is)
#   scripts/launchers.sh teardown   stop the daemons this script started
#   scripts/launchers.sh status     print what runs
#
# The tests (tests/integration/distributed.rs) read $MMRUN_SLURM_DIR/env
# (default /tmp/mmrun-slurm/env), which holds `export SLURM_CONF=...` lines.
# Installing needs root and apt-get; everything else runs with no TTY under
# `set -euo pipefail`.
set -euo pipefail

STATE_DIR="${MMRUN_SLURM_DIR:-/tmp/mmrun-slurm}"
CONF="$STATE_DIR/slurm.conf"
ENV_FILE="$STATE_DIR/env"
WAIT_S="${MMRUN_SLURM_WAIT_S:-90}"
# Ports of our own, so a cluster already on this machine is left alone.
CTLD_PORT="${MMRUN_SLURMCTLD_PORT:-16817}"
SLURMD_PORT="${MMRUN_SLURMD_PORT:-16818}"

say() { echo "launchers: $*"; }
die() {
    echo "launchers: error: $*" >&2
    exit 1
}

now() { date +%s.%N; }
T0="$(now)"
elapsed() { awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

APT_UPDATED=0
INSTALLED=0
apt_update() {
    [ "$(id -u)" = 0 ] || die "installing packages needs root"
    command -v apt-get >/dev/null || die "cannot install packages: no apt-get here"
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
}

apt_install() {
    [ "$(id -u)" = 0 ] || die "please install: $* (needs root)"
    command -v apt-get >/dev/null || die "please install: $* (no apt-get here)"
    apt_update
    say "apt-get install $*"
    # policy-rc.d keeps the packages' own init scripts from starting daemons
    # with the distribution's configuration while they install.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
    if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
    [ "$rc" = 0 ] || die "apt-get install $* failed (exit $rc)"
    INSTALLED=1
}

install_missing() {
    local pkgs=()
    command -v mpirun >/dev/null || pkgs+=(openmpi-bin)
    command -v slurmctld >/dev/null || pkgs+=(slurmctld)
    command -v slurmd >/dev/null || pkgs+=(slurmd)
    command -v srun >/dev/null || pkgs+=(slurm-client)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        # Slurm's mpi/pmix plugin needs libpmix-dev (below): one transaction.
        if [[ " ${pkgs[*]} " == *" slurmd "* ]]; then
            apt_update
            if apt-cache show libpmix-dev >/dev/null 2>&1; then pkgs+=(libpmix-dev); fi
        fi
        apt_install "${pkgs[@]}"
        say "installed ${pkgs[*]} ($(elapsed))"
    else
        say "mpirun, slurmctld, slurmd and srun are installed"
    fi
    # Slurm's mpi/pmix plugin dlopens the unversioned libpmix.so, which only
    # the -dev package ships; without it `srun --mpi=pmix` fails to load.
    local plugins
    if plugins="$(plugin_dir)" && compgen -G "$plugins/mpi_pmix*.so" >/dev/null &&
        ! compgen -G "/usr/lib/*/pmix2/lib/libpmix.so" >/dev/null; then
        apt_install libpmix-dev
        say "installed libpmix-dev for srun --mpi=pmix ($(elapsed))"
    fi
}

# Directory of Slurm's plugins (auth_none.so, mpi_pmix.so, ...).
plugin_dir() {
    local d
    for d in /usr/lib/*/slurm-wlm /usr/lib/slurm-wlm /usr/lib64/slurm /usr/lib/slurm /usr/local/lib/slurm; do
        if [ -e "$d/select_cons_tres.so" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() {
    SLURM_CONF="$CONF" sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true
}

start_munge() {
    if ! command -v munged >/dev/null; then
        apt_install munge
    fi
    local key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        say "creating $key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$key"
        else
            dd if=/dev/urandom bs=1 count=1024 of="$key" status=none
        fi
        chown munge:munge "$key" 2>/dev/null || true
        chmod 0400 "$key"
    fi
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munged is running"
        return 0
    fi
    say "starting munged"
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged
    else
        munged --force
    fi
    munge -n </dev/null | unmunge >/dev/null || die "munged does not answer"
}

write_conf() {
    local plugins="$1" auth
    local cpus mem_mb real_mem
    cpus="$(nproc)"
    mem_mb="$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)"
    # Half the memory, at most 4 GiB: slurmd drains a node whose RealMemory
    # exceeds what it finds, and the tests need little.
    real_mem=$((mem_mb / 2))
    if [ "$real_mem" -gt 4096 ]; then real_mem=4096; fi
    if [ "$real_mem" -lt 100 ]; then real_mem=100; fi

    if [ -e "$plugins/auth_none.so" ] && [ -e "$plugins/cred_none.so" ]; then
        auth="AuthType=auth/none
CredType=cred/none"
        AUTH_DESC="auth/none + cred/none"
    else
        start_munge
        auth="AuthType=auth/munge
CredType=cred/munge"
        AUTH_DESC="munge"
    fi

    mkdir -p "$STATE_DIR/state" "$STATE_DIR/spool" "$STATE_DIR/log"
    cat >"$CONF.new" <<EOF
# Generated by scripts/launchers.sh: a single-node cluster for mmrun's tests.
ClusterName=mmrun
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
$auth
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=15
Waittime=0
SchedulerType=sched/backfill
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.new" "$CONF"
    say "wrote $CONF (node $NODE, CPUs=$cpus, RealMemory=$real_mem MB, $AUTH_DESC)"
}

write_env() {
    cat >"$ENV_FILE.new" <<EOF
export SLURM_CONF=$CONF
export MMRUN_SLURM_DIR=$STATE_DIR
EOF
    mv "$ENV_FILE.new" "$ENV_FILE"
    say "wrote $ENV_FILE:"
    sed 's/^/  /' "$ENV_FILE"
}

stop_daemon() {
    local name="$1" pidfile="$STATE_DIR/$1.pid" pid
    if pid_alive "$pidfile"; then
        pid="$(cat "$pidfile")"
        say "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name did not stop in 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

setup() {
    NODE="$(hostname -s)"
    install_missing
    # Daemons started before an install (libpmix-dev, say) keep what they
    # loaded at start: restart them then.
    if [ "$INSTALLED" = 0 ] && [ -s "$ENV_FILE" ] && pid_alive "$STATE_DIR/slurmctld.pid" && pid_alive "$STATE_DIR/slurmd.pid"; then
        case "$(node_state)" in
        idle | mixed | allocated | completing)
            say "slurm is already running and node $NODE is $(node_state) ($CONF)"
            write_env
            return 0
            ;;
        esac
    fi
    stop_daemon slurmd
    stop_daemon slurmctld

    local plugins
    plugins="$(plugin_dir)" || die "cannot find Slurm's plugin directory (select_cons_tres.so)"
    say "$(slurmctld -V), plugins in $plugins"
    write_conf "$plugins"

    say "starting slurmctld"
    SLURM_CONF="$CONF" slurmctld -c -f "$CONF" ||
        die "slurmctld failed to start; see $STATE_DIR/log/slurmctld.log"
    say "starting slurmd"
    SLURM_CONF="$CONF" slurmd -f "$CONF" ||
        die "slurmd failed to start; see $STATE_DIR/log/slurmd.log"

    local deadline state=""
    deadline=$(($(date +%s) + WAIT_S))
    while :; do
        state="$(node_state)"
        case "$state" in
        idle) break ;;
        drain* | down*)
            # ReturnToService=2 brings a node back when it registers with a
            # valid configuration; say it once and keep waiting.
            ;;
        esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "launchers: error: node $NODE is '${state:-unknown}' after ${WAIT_S} s, not idle" >&2
            SLURM_CONF="$CONF" scontrol show node "$NODE" 2>&1 | sed 's/^/  /' >&2 || true
            tail -n 20 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" 2>/dev/null | sed 's/^/  /' >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    say "node $NODE is idle ($(elapsed) since setup began)"
    local mpi
    mpi="$(SLURM_CONF="$CONF" srun --mpi=list 2>&1 | tr -s ' \n' ' ' || true)"
    say "srun --mpi=list: $mpi"
    write_env
}

teardown() {
    if [ ! -d "$STATE_DIR" ]; then
        say "nothing to stop ($STATE_DIR does not exist)"
        return 0
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
    rm -f "$ENV_FILE"
    say "slurm stopped; logs kept in $STATE_DIR/log"
}

status() {
    NODE="$(hostname -s)"
    local d
    for d in slurmctld slurmd; do
        if pid_alive "$STATE_DIR/$d.pid"; then
            say "$d running (pid $(cat "$STATE_DIR/$d.pid"))"
        else
            say "$d not running"
        fi
    done
    [ -s "$CONF" ] && say "node $NODE: $(node_state)"
    command -v mpirun >/dev/null && say "$(mpirun --version 2>/dev/null | head -n1)"
    return 0
}

case "${1:-}" in
setup) setup ;;
teardown) teardown ;;
status) status ;;
*)
    echo "usage: $0 setup|teardown|status" >&2
    exit 2
    ;;
esac
