#!/usr/bin/python3
"""examples/python/ddp.py three ways, the same 20 steps of the same global batches:
    weftrun -n 2, DDP on backend weft
    weftrun -n 2, DDP on PyTorch's gloo (its env:// rendezvous on weftrun's MASTER_ADDR/PORT)
    one process, the whole batch, no DDP
weft's losses must equal gloo's (both sum the same two gradients, a + b == b + a) and follow the
one process's within float tolerance (its gradient is a mean over the whole batch at once).

    ddp_test.py --weftrun build/launcher/weftrun --python-path build/python
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DDP = os.path.join(HERE, "..", "..", "examples", "python", "ddp.py")
STEPS = 20


def run(command, env, timeout=150):
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def losses(launch, backend, scratch, env):
    path = os.path.join(scratch, f"{backend}.json")
    run(launch + [sys.executable, DDP, "--backend", backend, "--steps", str(STEPS),
                  "--losses", path], env)
    with open(path) as f:
        result = json.load(f)
    assert len(result["losses"]) == STEPS, result
    return result["losses"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weftrun", required=True)
    p.add_argument("--python-path", required=True)
    args = p.parse_args()
    env = dict(os.environ, PYTHONPATH=args.python_path)
    weftrun = [args.weftrun, "-n", "2", "--"]
    with tempfile.TemporaryDirectory(prefix="weft-ddp-") as scratch:
        weft = losses(weftrun, "weft", scratch, env)
        gloo = losses(weftrun, "gloo", scratch, env)
        alone = losses([], "none", scratch, env)
    failures = []
    for step, (w, g, a) in enumerate(zip(weft, gloo, alone)):
        if abs(w - g) > 1e-6 * abs(g):
            failures.append(f"step {step}: weft {w!r} != gloo {g!r}")
        if abs(w - a) > 1e-4 * abs(a):
            failures.append(f"step {step}: weft {w!r} is not one process's {a!r} (1e-4)")
    if weft[-1] >= 0.8 * weft[0]:
        failures.append(f"no learning: loss {weft[0]} -> {weft[-1]}")
    print("step  weft        gloo        one process")
    for step, (w, g, a) in enumerate(zip(weft, gloo, alone)):
        print(f"{step:4d}  {w:.8f}  {g:.8f}  {a:.8f}")
    if failures:
        sys.exit("\n".join(failures))
    print(f"ddp: weft = gloo and one process over {STEPS} steps")


if __name__ == "__main__":
    main()
