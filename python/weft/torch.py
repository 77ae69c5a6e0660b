"""The torch.distributed backend "weft": importing this module registers it.

    import torch.distributed as dist
    import weft.torch
    dist.init_process_group("weft")    # under weftrun (or torchrun): env:// rendezvous
    model = torch.nn.parallel.DistributedDataParallel(model)

The process group runs weft's collectives on its own communicator, split from weft.init()'s
world (so a program may use both). torch.distributed's store still meets through MASTER_ADDR
and MASTER_PORT, which weftrun sets; weft's ranks meet through weft's own rendezvous. Groups of
every rank only: torch.distributed.new_group with a subset of ranks is refused (use
weft.Communicator.split). Each op's deadline is WEFT_TIMEOUT, not init_process_group's timeout.
"""
import atexit

import torch.distributed as dist

import weft

from . import _weft_torch

_groups = []


def _create(store, rank, size, timeout):
    del store, timeout  # weft meets through its own rendezvous and has its own deadlines
    world = weft.init()
    if size != world.size or rank != world.rank:
        error = weft.Error(
            f"InvalidArgument: torch.distributed asked weft for a group of {size} ranks in "
            f"which this one is {rank}, but weft's world has {world.size} and this rank is "
            f"{world.rank}: the backend runs groups of every rank only; split a "
            f"weft.Communicator for subsets")
        error.code = weft.Status.INVALID_ARGUMENT
        raise error
    group = _weft_torch.create(world.split(0, rank)._release(), rank, size)
    _groups.append(group)
    return group


@atexit.register
def _close_groups():
    # Before weft's own exit handler closes the world (handlers run last registered first).
    while _groups:
        _weft_torch.close(_groups.pop())


dist.Backend.register_backend("weft", _create)
