#!/usr/bin/env bash
# A one-node Slurm on this machine, for the tests and CI: scripts/local_slurm.sh start|stop|status
#
# Needs Debian's packages (apt-get install slurm-wlm munge) and root (it writes /etc/slurm/slurm.conf
# and starts the daemons directly: there is no systemd here). Idempotent: `start` on a running Slurm
# changes nothing; `stop` on a stopped one too. State and logs: /var/tmp/harness-slurm.
set -euo pipefail

STATE=/var/tmp/harness-slurm
CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)

running() { pgrep -x "$1" >/dev/null; }

write_conf() {
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
    cat > "$CONF" <<CONF
# written by scripts/local_slurm.sh: one node, this machine
ClusterName=harness
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
# a requeued job waits cred_expire + 1 s before it starts again (default 120 s)
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
KillWait=5
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    [ "$(id -u)" = 0 ] || { echo "local_slurm.sh: run as root (it writes $CONF and starts daemons)" >&2; exit 1; }
    command -v slurmctld >/dev/null || { echo "local_slurm.sh: apt-get install slurm-wlm munge" >&2; exit 1; }
    write_conf
    if ! running munged; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        runuser -u munge -- munged
    fi
    running slurmctld || slurmctld
    running slurmd || slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            echo "local Slurm up: $(sinfo -h -o '%P %D node(s) %c CPUs %T')"
            return 0
        fi
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "local_slurm.sh: the node did not become idle; logs in $STATE" >&2
    sinfo >&2 || true
    exit 1
}

# SIGTERM, then SIGKILL after 10 s; returns once they are gone, so that a `start` right after does
# not take an exiting daemon for a running one (a slurmd stuck retrying its registration ignored
# SIGTERM; a munged still exiting left start without a munge socket)
end_daemons() {
    for signal in TERM KILL; do
        for daemon in "$@"; do pkill "-$signal" -x "$daemon" 2>/dev/null || true; done
        for _ in $(seq 20); do
            local alive=""
            for daemon in "$@"; do running "$daemon" && alive=1; done
            [ -z "$alive" ] && return 0
            sleep 0.5
        done
    done
}

stop() {
    end_daemons slurmd slurmctld
    end_daemons munged
    echo "local Slurm stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
