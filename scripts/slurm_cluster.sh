#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for `make slurm-check` (issue 18). Needs root.
#
#   scripts/slurm_cluster.sh up [DIR]     # prints the line to export: SLURM_CONF=DIR/slurm.conf
#   scripts/slurm_cluster.sh down [DIR]
#
# up installs slurm-wlm and munge with apt when they are missing, writes a munge key and a minimal
# slurm.conf for this machine's cores and memory into DIR (default /tmp/softpatch-slurm), starts
# munged, slurmctld and slurmd with their pid files, logs and state in DIR, and waits until sinfo
# shows the node idle. Jobs run as root in the caller's file system, so the results folder and
# the feature cache of a sweep are "shared" as on a real cluster's network file system. Memory
# limits (--mem) are enforced by polling (JobAcctGatherParams=OverMemoryKill): a task above its
# limit is killed and its job fails. down stops only the daemons whose pid files are in DIR and
# removes DIR.
set -euo pipefail
cmd=${1:?usage: slurm_cluster.sh up|down [DIR]}
dir=${2:-/tmp/softpatch-slurm}

stop() { # stop the daemon whose pid file is $1, if it runs
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

case $cmd in
down)
  for d in slurmd slurmctld munged; do stop "$dir/$d.pid"; done
  rm -rf "$dir"
  exit 0
  ;;
up) ;;
*) echo "usage: slurm_cluster.sh up|down [DIR]" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || { echo "slurm_cluster.sh: needs root (the daemons run as root)" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
  echo "slurm_cluster.sh: a cluster already runs from $dir (down it first)" >&2
  exit 1
fi
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 )) # MB, less 1 GiB for the system

dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed"

cat >"$dir/slurm.conf" <<CONF
ClusterName=softpatch-check
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
DependencyParameters=kill_invalid_depend
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

export SLURM_CONF=$dir/slurm.conf
slurmctld -c -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null || true)
  if [ "$state" = idle ]; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm_cluster.sh: the node did not become idle in 60 s (sinfo: ${state:-no answer}); logs in $dir" >&2
exit 1
