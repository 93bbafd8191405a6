#!/usr/bin/env bash
# A real single-node Slurm cluster for tests: `scripts/slurm.sh start|stop|status`.
#
# start: installs Debian's slurm-wlm and munge if absent (root, apt-get), writes a private config
#        under .cache/slurm/ (never /etc/slurm), starts munged (unless one runs), slurmctld and
#        slurmd, each writing its pid file there, and waits until the node is idle. Clients find
#        the cluster through SLURM_CONF: `export SLURM_CONF=$PWD/.cache/slurm/slurm.conf`.
# stop:  stops the daemons this script started, by their pid files.
#
# Needs root (the daemons run as root: no slurm user to set up). ~20 s to install, ~2 s to start.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD/.cache/slurm"
CONF="$DIR/slurm.conf"

die() { echo "slurm.sh: $*" >&2; exit 1; }

install() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && return
  [ "$(id -u)" = 0 ] || die "slurm-wlm is not installed and installing it needs root"
  echo "slurm.sh: installing slurm-wlm and munge (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge \
    >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge \
      >/dev/null
  }
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
  local host node
  host="$(hostname -s)"
  # The hardware fields as slurmd sees them (CPUs, sockets, cores, threads, memory).
  node="$(slurmd -C | head -1)"
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat >"$CONF" <<EOF
# Written by scripts/slurm.sh: a one-node cluster for tests.
ClusterName=sluice-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# Finished jobs stay visible to squeue/scontrol a while (no accounting here).
MinJobAge=600
KillWait=5
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  install
  mkdir -p "$DIR"
  if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
    echo "slurm.sh: already running (SLURM_CONF=$CONF)" >&2
    return
  fi
  write_config
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    [ -f /etc/munge/munge.key ] || die "no /etc/munge/munge.key (the munge package creates it)"
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.ours"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged does not answer"
  fi
  export SLURM_CONF="$CONF"
  /usr/sbin/slurmctld -f "$CONF"
  /usr/sbin/slurmd -f "$CONF"
  for _ in $(seq 100); do
    state="$(sinfo -h -o %t 2>/dev/null || true)"
    [ "$state" = idle ] && break
    sleep 0.2
  done
  [ "$state" = idle ] || {
    tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    die "the node is not idle (state: ${state:-none})"
  }
  echo "slurm.sh: cluster up, node idle; export SLURM_CONF=$CONF" >&2
}

stop() {
  for daemon in slurmd slurmctld; do
    pidfile="$DIR/$daemon.pid"
    if alive "$pidfile"; then
      pid="$(cat "$pidfile")"
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
  done
  if [ -f "$DIR/munged.ours" ]; then
    pidfile=/run/munge/munged.pid
    if alive "$pidfile"; then kill "$(cat "$pidfile")"; fi
    rm -f "$DIR/munged.ours"
  fi
  # Job state would be replayed by the next start: a test cluster starts empty.
  rm -rf "$DIR/state" "$DIR/spool"
  echo "slurm.sh: stopped" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && SLURM_CONF="$CONF" sinfo ;;
  *) die "usage: scripts/slurm.sh start|stop|status" ;;
esac
