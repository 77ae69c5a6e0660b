"""What bench-train and bench-parallel share: running a program under a timeout, and reading
weft-train's (and torch_gpt.py's) per-step JSON lines into rates.

A module, not a script: the benchmarks find it because Python puts a script's own folder first
on sys.path. Standard library only.
"""

import json
import os
import signal
import subprocess
import sys


def json_objects(text):
    """Every line of `text` that is a JSON object, parsed; other lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def step_records(objects):
    """The per-step records of a training log: eval lines, headers and summaries left out."""
    return [o for o in objects if "step" in o and "tokens_per_s" in o and "ms_step" in o]


def timed_steps(records, skip):
    """The steps after the first `skip` (those pay for page faults and thread start-up); all of
    them when there are no more."""
    return records[skip:] if len(records) > skip else records


def summarize(records, skip):
    """Rates as work over time for the steps after the first `skip`, the way weft-train's own
    summary averages; comm_hidden is the plain mean of the steps' comm_hidden. None when there
    is no step."""
    if not records:
        return None
    timed = timed_steps(records, skip)
    seconds = sum(r["ms_step"] for r in timed) / 1e3
    tokens = sum(r["tokens_per_s"] * r["ms_step"] / 1e3 for r in timed)
    gflop = sum(r.get("model_gflops", 0.0) * r["ms_step"] / 1e3 for r in timed)
    hidden = [r["comm_hidden"] for r in timed if "comm_hidden" in r]
    return {
        "steps": len(records),
        "timed_steps": len(timed),
        "loss": records[-1].get("loss"),
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "model_gflops": gflop / seconds if seconds > 0 else 0.0,
        "ms_step": 1e3 * seconds / len(timed),
        "comm_hidden": sum(hidden) / len(hidden) if hidden else None,
    }


def run(cmd, env, timeout, label, log_stream, merge_stderr=False):
    """Runs cmd; returns (stdout, None) or (stdout, reason it failed). merge_stderr: stderr
    comes back inside stdout, in order (for a caller that looks for the cause of a failure)."""
    who = os.path.basename(sys.argv[0])
    print(f"{who}: {label}: {' '.join(cmd)}", file=log_stream, flush=True)
    try:
        # A session of its own, so a timeout ends the launcher's ranks too, not only weftrun.
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                             text=True, start_new_session=True)
    except FileNotFoundError:
        return "", f"{cmd[0]} not found"
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return out, f"timed out after {timeout} s"
    if p.returncode != 0:
        tail = (err or out).strip().splitlines()[-4:]
        return out, f"exit {p.returncode}: " + " | ".join(tail)
    return out, None
