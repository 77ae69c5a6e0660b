#!/usr/bin/python3
"""A small PyTorch training loop with DistributedDataParallel over weft's collectives.

    weftrun -n 2 -- /usr/bin/python3 examples/python/ddp.py                  # backend weft
    weftrun -n 2 -- /usr/bin/python3 examples/python/ddp.py --backend gloo   # PyTorch's own
    /usr/bin/python3 examples/python/ddp.py --backend none                   # one process

An MLP learns to classify synthetic data (a fixed random teacher labels Gaussian inputs). Each
step takes the next global batch; under a launcher, rank r trains on its equal share of it and
DDP averages the gradients, so every backend, and one process taking the whole batch, follow
the same trajectory. Rank 0 prints the global batch's loss each step ("step 3 loss 2.2871");
--losses FILE also writes them as JSON, --time the mean step time after the first 3 steps.

weftrun sets MASTER_ADDR and MASTER_PORT, where torch.distributed's env:// rendezvous meets
(gloo and weft alike); weft's own ranks meet through weftrun's coordinator. Run it with the
python that has torch (Debian's python3-torch serves /usr/bin/python3, to which a python
without torch hands the script over); the weft package is found on PYTHONPATH, or in
build/python of this checkout.
"""
import argparse
import json
import os
import sys
import time

try:
    import torch
except ImportError:
    # Debian's python3-torch serves /usr/bin/python3, which need not be the python3 first on
    # PATH (pyenv, a virtual environment): `weftrun -n 2 -- python3 ddp.py` still trains.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
import torch.distributed as dist
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", default="weft", choices=["weft", "gloo", "none"],
                   help="torch.distributed backend; none: one process, no DDP")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64, help="global batch (split over the ranks)")
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2, help="hidden layers")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--bucket-mb", type=float, default=25, help="DDP's bucket_cap_mb")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--losses", help="write the per-step losses here as JSON (rank 0)")
    p.add_argument("--time", action="store_true",
                   help="print the mean step time (ms) after the first 3 steps (rank 0)")
    return p.parse_args()


def import_weft_backend():
    try:
        import weft.torch  # noqa: F401  registers the backend "weft"
    except ImportError:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "..", "build", "python"))
        import weft.torch  # noqa: F401


def make_model(args):
    layers, width = [], args.features
    for _ in range(args.layers):
        layers += [torch.nn.Linear(width, args.hidden), torch.nn.Tanh()]
        width = args.hidden
    layers.append(torch.nn.Linear(width, args.classes))
    return torch.nn.Sequential(*layers)


def global_batch(args, step, teacher):
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(args.batch, args.features, generator=g)
    return x, teacher(x).argmax(dim=1)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    distributed = args.backend != "none"
    if distributed:
        if args.backend == "weft":
            import_weft_backend()
        dist.init_process_group(args.backend)  # env://: RANK, WORLD_SIZE, MASTER_ADDR/PORT
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if args.batch % world:
        sys.exit(f"ddp.py: --batch {args.batch} does not split evenly over {world} ranks")
    share = args.batch // world

    torch.manual_seed(0)  # the same initial weights everywhere (DDP broadcasts rank 0's too)
    teacher = make_model(args).requires_grad_(False)
    model = make_model(args)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    losses, step_seconds = [], []
    for step in range(args.steps):
        x, y = global_batch(args, step, teacher)
        x, y = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()  # DDP averages the gradients over the ranks here
        optimizer.step()
        step_seconds.append(time.perf_counter() - start)
        reported = loss.detach().clone()
        if distributed:
            dist.all_reduce(reported)  # the global batch's loss: the mean of equal shares
            reported /= world
        losses.append(reported.item())
        if rank == 0:
            print(f"step {step} loss {losses[-1]:.6f}", flush=True)

    if rank == 0 and args.time and len(step_seconds) > 3:
        mean_ms = 1000 * sum(step_seconds[3:]) / len(step_seconds[3:])
        print(f"step time {mean_ms:.3f} ms ({args.backend}, {world} ranks)", flush=True)
    if rank == 0 and args.losses:
        with open(args.losses, "w") as f:
            json.dump({"backend": args.backend, "ranks": world, "losses": losses}, f)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
