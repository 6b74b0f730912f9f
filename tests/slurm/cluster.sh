#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the SLURM test (needs root and Debian's apt).
#   cluster.sh start DIR   install slurm-wlm + munge if missing, write DIR/slurm.conf, start the daemons
#   cluster.sh stop DIR    stop them
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf, and job steps (srun inside a batch job,
# which does not see SLURM_CONF) through /etc/slurm/slurm.conf, linked to it while the cluster is up;
# a machine that already has a SLURM config of its own is refused (a stale link from a killed test run
# is replaced). Finished jobs are recorded one per line in DIR/jobcomp.log (jobcomp/filetxt: this
# cluster has no accounting database for sacct).
set -euo pipefail
action=$1
dir=$(realpath -m "$2")

stop() {
    for daemon in slurmd slurmctld; do
        [ -f "$dir/$daemon.pid" ] && kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
    done
    [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$dir/slurm.conf" ]; then
        rm /etc/slurm/slurm.conf
    fi
    return 0
}

if [ "$action" = stop ]; then
    stop
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: slurm-wlm and munge are not installed and this is not root; install them (apt-get install slurm-wlm munge) or run as root" >&2
        exit 2
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$dir.apt.log" 2>&1 || {
        apt-get update -q >>"$dir.apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$dir.apt.log" 2>&1
    }
fi

# A link left by a test cluster that was killed (its slurmctld is gone) is stale: replace it.
# A live test cluster, or any other SLURM config, is refused.
linked=$(readlink /etc/slurm/slurm.conf 2>/dev/null || true)
if [ -n "$linked" ] && [ "$linked" != "$dir/slurm.conf" ] && grep -qs "^ClusterName=pipeline-test$" "$linked"; then
    other=$(dirname "$linked")
    if [ -f "$other/slurmctld.pid" ] && kill -0 "$(cat "$other/slurmctld.pid")" 2>/dev/null; then
        echo "error: another test SLURM cluster is running from $other; stop it (cluster.sh stop $other) and rerun" >&2
        exit 2
    fi
    rm -f /etc/slurm/slurm.conf
elif [ -n "$linked" ] && [ ! -e "$linked" ]; then
    rm -f /etc/slurm/slurm.conf
fi
if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$dir/slurm.conf" ]; then
    echo "error: /etc/slurm/slurm.conf exists, so this machine has its own SLURM; run the test on a machine without one" >&2
    exit 2
fi
mkdir -p "$dir/state" "$dir/spool" "$dir/munge" /etc/slurm
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat >"$dir/slurm.conf" <<CONF
ClusterName=pipeline-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# munge: its own socket and pid under DIR, so a system munged (if any) is left alone
[ -f /etc/munge/munge.key ] || mungekey --create
export SLURM_CONF=$dir/slurm.conf
munged --force --socket="$dir/munge/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munge/seed"
# slurm's auth/munge plugin reads the socket path from AuthInfo
sed -i "s|^AuthType=auth/munge|AuthType=auth/munge\nAuthInfo=socket=$dir/munge/munge.socket|" "$dir/slurm.conf"
ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "^idle"; then
        exit 0
    fi
    sleep 1
done
echo "error: the test SLURM node did not come up in 60 s; see $dir/slurmctld.log and $dir/slurmd.log" >&2
stop
exit 1
