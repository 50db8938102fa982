#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests and for trying the SLURM profile (docs/cluster.md):
#   scripts/slurm_local.sh start  [DIR]   # prints `export SLURM_CONF=DIR/slurm.conf PATH=DIR/bin:$PATH`
#   scripts/slurm_local.sh status DIR
#   scripts/slurm_local.sh stop   DIR     # idempotent: cancels the jobs, ends every process it started
# DIR (created when missing; default: a new mktemp directory) holds everything: munge key and socket,
# slurm.conf, controller state, spool, logs. Needs Debian's slurm-wlm and munge (22.05), run as root
# (slurmd starts jobs as their submitting user). No cgroups and no accounting database: ProctrackType
# linuxproc, TaskPlugin none, AccountingStorageType none (so no sacct: query jobs with squeue/scontrol;
# MinJobAge keeps finished jobs visible to squeue and scontrol for an hour). The node has the CPUs and memory
# `slurmd -C` reports and no GPU; partitions `cpu` (default) and `gpu` both hold it.
# DIR/bin has the client commands (sbatch, srun, squeue, ...) with SLURM_CONF set: Snakemake's
# jobstep plugin drops every SLURM_* variable but the job's ids before its `srun`, so a job finds a
# cluster whose slurm.conf is not /etc/slurm/slurm.conf only through PATH.
set -euo pipefail

MARK=SGPOSE_SLURM_LOCAL  # set in the daemons' environment only: `stop` finds what this cluster started

die() { echo "slurm_local: $*" >&2; exit "${2:-1}"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# pids whose environment holds MARK=$1 (the daemons, slurmstepd), and all their descendants (the jobs)
cluster_pids() {
  local dir=$1 roots=() pid
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/}; pid=${pid%/environ}
    if { tr "\0" "\n" <"$env"; } 2>/dev/null | grep -qxF "$MARK=$dir"; then roots+=("$pid"); fi
  done
  [ ${#roots[@]} -eq 0 ] && return 0
  ps -eo pid=,ppid= | awk -v roots="${roots[*]}" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; while (q > 1) { if (q in keep) { print p; break } q = parent[q] } } }'
}

write_conf() {
  local dir=$1 node_line node
  node_line=$(slurmd -C | head -n 1)  # NodeName=... CPUs=... RealMemory=...
  node=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$node_line")
  cat >"$dir/slurm.conf" <<EOF
ClusterName=sgpose-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP
EOF
  sed -i '/^UpTime=/d' "$dir/slurm.conf"
}

write_clients() {
  local dir=$1 exe path search
  search=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$dir/bin" | paste -sd:)  # never a client of an earlier start
  mkdir -p "$dir/bin"
  for exe in sbatch srun squeue scontrol scancel sinfo sacct; do
    path=$(PATH=$search command -v "$exe") || continue
    printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$dir/slurm.conf" "$path" >"$dir/bin/$exe"
    chmod +x "$dir/bin/$exe"
  done
}

start() {
  local dir=${1:-}
  for exe in munged mungekey slurmctld slurmd sinfo; do
    command -v "$exe" >/dev/null || die "$exe not found: install Debian's slurm-wlm and munge (apt-get install slurm-wlm munge)" 3
  done
  [ "$(id -u)" = 0 ] || die "must run as root (slurmd starts jobs as their user)" 3
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/sgpose-slurm.XXXXXX)
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
  [ -z "$(cluster_pids "$dir")" ] || die "a cluster already runs from $dir (stop it first)"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir/munge"
  [ -f "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key"
  write_conf "$dir"
  write_clients "$dir"
  export "$MARK=$dir" SLURM_CONF="$dir/slurm.conf"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  slurmctld -i -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N "$(sed -nE 's/^NodeName=([^ ]+).*/\1/p' "$SLURM_CONF")"
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "export SLURM_CONF=$SLURM_CONF PATH=$dir/bin:\$PATH"
      return 0
    fi
    sleep 0.5
  done
  echo "slurm_local: the node did not come up within 30 s; logs in $dir/log:" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  stop "$dir"
  exit 1
}

stop() {
  local dir=${1:?stop needs the cluster directory} pids
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/slurm.conf" ] && [ -n "$(cluster_pids "$dir")" ]; then
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --full --user=root >/dev/null 2>&1 || true
    sleep 1
  fi
  for signal in TERM TERM TERM KILL; do
    pids=$(cluster_pids "$dir")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -s "$signal" $pids 2>/dev/null || true
    sleep 1
  done
  pids=$(cluster_pids "$dir")
  [ -z "$pids" ] || die "processes still running after SIGKILL: $pids"
}

status() {
  local dir=${1:?status needs the cluster directory}
  SLURM_CONF="$dir/slurm.conf" sinfo && SLURM_CONF="$dir/slurm.conf" squeue
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  status) status "${2:-}" ;;
  *) die "usage: $0 start [DIR] | status DIR | stop DIR" 2 ;;
esac
