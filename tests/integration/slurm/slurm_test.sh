#!/bin/bash
# weft under a real Slurm: a single-node cluster (munged, slurmctld, slurmd on localhost, from a
# slurm.conf generated in a temporary directory, 4 CPUs declared), then one of:
#   sbatch   examples/slurm/train.sbatch trains a tiny model (one weftrun per node under srun)
#   srun     `srun -n 4 weft-train` with no launcher of weft's: each rank's rank, world size and
#            job come from Slurm, and rank 0's host and port from the step
#   requeue  the same script sent its time limit's SIGUSR1: it passes it on, requeues itself,
#            and the requeued run trains to the end
#   mpirun   `mpirun` inside an sbatch script, where every rank sees the batch step's
#            SLURM_PROCID=0: the ranks come from Open MPI's variables
# Every daemon it starts, and every process of the cluster's jobs, is stopped however it ends;
# every wait has a timeout. Installs slurm-wlm and munge when missing (as `make deps` does);
# exits 77 (ctest: skipped) without root or when they cannot be had.
#
# usage: slurm_test.sh sbatch|requeue|srun|mpirun SOURCE_DIR BUILD_DIR
set -euo pipefail

mode=$1
src=$2
build=$3

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAILED: $*"
  exit 1
}

[ "$(id -u)" = 0 ] || skip "Slurm's daemons need root here (slurmd runs jobs as their user)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || skip "slurm-wlm and munge are missing and this is not Debian"
  echo "installing slurm-wlm and munge"
  timeout 600 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurm-wlm munge >/dev/null || skip "cannot install slurm-wlm and munge"
fi

# A run killed outright (ctest's timeout) could not stop its cluster: stop those whose test
# script is gone, found by the SLURM_CONF every process of a cluster inherits (see below).
sweep_stale_clusters() {
  local environ conf_line owner
  for environ in $(grep -lsz '^SLURM_CONF=/tmp/weft-slurm-[0-9]*-' /proc/[0-9]*/environ); do
    conf_line=$(grep -asz '^SLURM_CONF=' "$environ" | tr -d '\0') || continue
    owner=$(echo "$conf_line" | sed -n 's|^SLURM_CONF=/tmp/weft-slurm-\([0-9]*\)-.*|\1|p')
    # Gone, or a zombie its parent has not reaped yet.
    [ -n "$owner" ] && ! grep -qs '^State:[[:space:]]*[A-Y]' "/proc/$owner/status" || continue
    pid=${environ#/proc/}
    kill -9 "${pid%/environ}" 2>/dev/null || true
    rm -rf "$(dirname "${conf_line#SLURM_CONF=}")"
  done
  return 0
}
sweep_stale_clusters

dir=$(mktemp -d "/tmp/weft-slurm-$$-XXXXXX")
conf=$dir/slurm.conf
export SLURM_CONF=$conf
daemons=()

# Every process of this cluster: its daemons, the slurmstepd of its steps and its jobs' tasks
# all inherit SLURM_CONF=$conf (and nothing else on the machine has it).
cluster_pids() {
  grep -lsxzF "SLURM_CONF=$conf" /proc/[0-9]*/environ | sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
  return 0
}

cleanup() {
  local status=$?
  trap - EXIT
  set +e  # stop everything, whatever fails on the way
  if [ "$status" != 0 ] && [ "$status" != 77 ]; then
    for log in slurmctld.log slurmd.log job.out; do
      [ -f "$dir/$log" ] && { echo "--- $log (last lines)"; tail -n 30 "$dir/$log"; }
    done
  fi
  timeout 10 scancel --full --quiet --user=root 2>/dev/null || true
  [ ${#daemons[@]} -gt 0 ] && kill "${daemons[@]}" 2>/dev/null
  for _ in $(seq 50); do
    [ -z "$(cluster_pids)" ] && break
    sleep 0.1
  done
  local left
  left=$(cluster_pids)
  # shellcheck disable=SC2086
  [ -n "$left" ] && kill -9 $left 2>/dev/null
  wait
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# Ports of this run: two runs at once (two build trees) must not meet.
port=$((20000 + ($$ % 4000) * 2))
mkdir -p "$dir/state" "$dir/spool"
head -c 1024 /dev/urandom >"$dir/munge.key"
chmod 400 "$dir/munge.key"
cat >"$conf" <<EOF
ClusterName=wefttest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

munged -F -f --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
  --log-file="$dir/munged.log" --pid-file="$dir/munged.pid" --seed-file="$dir/munged.seed" \
  >"$dir/munged.out" 2>&1 &
daemons+=($!)
for _ in $(seq 50); do [ -S "$dir/munge.socket" ] && break; sleep 0.1; done
[ -S "$dir/munge.socket" ] || fail "munged did not start: $(cat "$dir/munged.out")"
slurmctld -D -i -f "$conf" >"$dir/slurmctld.out" 2>&1 &
daemons+=($!)
slurmd -D -N localhost -f "$conf" >"$dir/slurmd.out" 2>&1 &
daemons+=($!)
for _ in $(seq 150); do
  [ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ] && break
  sleep 0.2
done
[ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ] || fail "the node did not become idle"
echo "Slurm up in $dir (slurmctld port $port)"

# Every cluster's first job is job 1, whose coordinator port train.sbatch would derive alike:
# the tests that run at once (ctest -j) give it a port of their own.
export MASTER_PORT=$((port + 2))

tiny_model="--layers 2 --d-model 64 --heads 4 --seq 32 --batch 8 --micro-batch 2 --lr 3e-3 \
--warmup 2 --eval-every 0"

case "$mode" in
  sbatch)
    log=$dir/train.json
    WEFT_BIN=$build RANKS_PER_NODE=2 TRAIN_FLAGS="$tiny_model --steps 20 --log-json $log" \
      CKPT_FLAGS="--ckpt-dir $dir/ckpt --ckpt-every 10 --resume" timeout 180 sbatch --wait --nodes=1 --cpus-per-task=2 --time=5 --output="$dir/job.out" \
      "$src/examples/slurm/train.sbatch" || fail "the job failed: $(cat "$dir/job.out")"
    cat "$dir/job.out"
    grep -q "1 node(s) x 2 ranks, coordinator localhost:$MASTER_PORT" "$dir/job.out" || fail "no start line"
    grep -q "2 ranks over" "$dir/job.out" || fail "weft-train did not run on 2 ranks"
    [ "$(grep -c '"loss"' "$log")" = 20 ] || fail "$log does not hold 20 steps"
    [ -s "$dir/ckpt/LATEST" ] || fail "the job committed no checkpoint in $dir/ckpt"
    python3 - "$log" <<'PY' || fail "the loss did not fall"
import json, sys
loss = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
print(f"loss {loss[0]:.4f} -> {loss[-1]:.4f} in {len(loss)} steps")
sys.exit(0 if loss[-1] < loss[0] - 0.3 else 1)
PY
    ;;
  requeue)
    # The time limit's SIGUSR1 (#SBATCH --signal=B:USR1@120), sent at once with scancel: the
    # script passes it to the step and requeues the job, and the requeued run trains to the end.
    log=$dir/train.json
    # Enough steps that the signal reaches the ranks (script, srun, slurmstepd, weftrun) before
    # they finish: the tiny model trains 300 steps in under a second, which a loaded machine's
    # signal path took longer than.
    WEFT_BIN=$build RANKS_PER_NODE=2 TRAIN_FLAGS="$tiny_model --steps 3000 --log-json $log" \
      CKPT_DIR=$dir/ckpt timeout 30 sbatch --parsable --nodes=1 --cpus-per-task=2 --time=5 --output="$dir/job.out" \
      "$src/examples/slurm/train.sbatch" >"$dir/job.id" || fail "sbatch failed"
    job=$(cat "$dir/job.id")
    job_field() { timeout 5 scontrol show job "$job" 2>/dev/null | sed -n "s/.*$1=\([A-Z_0-9]*\).*/\1/p"; }
    for _ in $(seq 900); do grep -q "step    1/3000" "$dir/job.out" 2>/dev/null && break; sleep 0.1; done
    grep -q "step    1/3000" "$dir/job.out" || fail "the job did not start training"
    timeout 10 scancel --batch --signal=USR1 "$job" || fail "scancel --signal=USR1 failed"
    for _ in $(seq 300); do [ "$(job_field Restarts)" = 1 ] && break; sleep 0.1; done
    [ "$(job_field Restarts)" = 1 ] || fail "the job was not requeued"
    # Slurm holds a requeued job back for two minutes (a begin time it sets once the job is
    # PENDING again); the test lifts the hold rather than wait.
    for _ in $(seq 300); do
      case "$(job_field JobState)" in
        COMPLETED) break ;;
        # The job may have started between the two calls: the update then fails, harmlessly.
        PENDING) timeout 10 scontrol update JobId="$job" StartTime=now 2>/dev/null || true ;;
      esac
      sleep 0.4
    done
    cat "$dir/job.out"
    [ "$(job_field JobState)" = COMPLETED ] || fail "the requeued job did not complete: $(job_field JobState)"
    grep -q "time limit near: passing SIGUSR1 to the ranks and requeueing" "$dir/job.out" ||
      fail "the script did not hear SIGUSR1"
    grep -q "job $job (restart 1)" "$dir/job.out" || fail "no requeued run"
    grep -q "step 3000/3000" "$dir/job.out" || fail "the requeued run did not train to the end"
    # SIGUSR1 made the ranks commit the step they were in; the requeued run continued after it.
    grep -q "weft-train: preempted by SIGUSR1: stopped after step" "$dir/job.out" ||
      fail "the ranks did not save and stop on SIGUSR1"
    saved=$(sed -n 's/.*preempted by SIGUSR1: stopped after step \([0-9]*\).*/\1/p' "$dir/job.out" | head -n 1)
    grep -q "weft-train: resumed from .*: continuing after step $saved\$" "$dir/job.out" ||
      fail "the requeued run did not resume after step $saved"
    ;;
  srun)
    unset MASTER_PORT  # the port too comes from Slurm (the job and step ids)
    # No weftrun, no MASTER_ADDR: srun alone. Each task prints Slurm's job id, then weft's
    # view of it (WEFT_LOG=info: "connected rank R/4 ... via slurm, job J").
    out=$dir/srun.out
    # shellcheck disable=SC2016
    WEFT_LOG=info timeout 120 srun -n 4 --label bash -c \
      'echo "slurm job $SLURM_JOB_ID step $SLURM_STEP_ID"; exec "$0" "$@"' \
      "$build/train/weft-train" $tiny_model --steps 4 >"$out" 2>&1 || fail "srun failed: $(cat "$out")"
    cat "$out"
    job=$(sed -n 's/^0: slurm job \([0-9]*\) step.*/\1/p' "$out")
    [ -n "$job" ] || fail "no job id"
    for rank in 0 1 2 3; do
      grep -q "^$rank: \[weft rank $rank info\] connected rank $rank/4 (local $rank/4, node 0) via slurm, job $job over" "$out" \
        || fail "task $rank did not learn rank $rank of 4 and job $job from Slurm"
    done
    grep -q "^0: step    4/4" "$out" || fail "weft-train did not finish its 4 steps"
    ;;
  mpirun)
    command -v mpirun >/dev/null || skip "no mpirun (Debian's openmpi-bin)"
    out=$dir/job.out
    # Inside the batch script every process inherits SLURM_PROCID=0: were ranks read from
    # Slurm's variables, both would be rank 0 and the allreduce would never complete.
    WEFT_LOG=info timeout 120 sbatch --wait -n 2 --time=5 --output="$out" --wrap \
      "echo batch SLURM_PROCID=\$SLURM_PROCID; mpirun --allow-run-as-root -n 2 \
      $build/tests/integration/weftrun_rank_helper allreduce" || fail "the job failed: $(cat "$out")"
    cat "$out"
    grep -q "^batch SLURM_PROCID=0" "$out" || fail "the batch step did not set SLURM_PROCID=0"
    for rank in 0 1; do
      grep -q "connected rank $rank/2 (local $rank/2, node [0-9]*) via openmpi" "$out" \
        || fail "rank $rank did not come from Open MPI's variables"
      grep -q "^rank $rank allreduce 3 over" "$out" || fail "rank $rank did not allreduce 1+2"
    done
    ;;
  *)
    fail "unknown mode $mode: sbatch, requeue, srun or mpirun"
    ;;
esac
echo "PASSED: $mode"
