"""weft's collectives from Python, on numpy arrays and PyTorch tensors, without copies.

    import weft
    comm = weft.init()                 # the world, from the launcher (weftrun, torchrun, mpirun)
    x = numpy.arange(4, dtype=numpy.float32)
    comm.allreduce(x)                  # in place: x is now the sum over ranks
    req = comm.allgather(x, out, async_op=True)
    req.wait()                         # the GIL is released while it waits

Arrays are anything with the buffer protocol (numpy) or __dlpack__ (torch tensors, bfloat16
included), C-contiguous, of float32, float16, bfloat16, float64, int32, int64 or uint8. A
failure raises weft.Error, whose `code` is a weft.Status (TIMEOUT, PEER_LOST, ...).

`import weft.torch` registers the torch.distributed backend "weft".
"""
import atexit
import threading

from ._weft import (AVG, MAX, MIN, PROD, SUM, Communicator, Error, Op, Request, Status,
                    init_from_env)

__all__ = ["init", "Communicator", "Request", "Error", "Status", "Op", "SUM", "AVG", "MAX", "MIN",
           "PROD", "init_from_env"]

_lock = threading.Lock()
_world = None


def init(backend=None):
    """The world communicator of this process, met through the launcher's environment on the
    first call (`backend` as WEFT_BACKEND: None reads it) and the same object afterwards, so
    that weft.torch and the program share it."""
    global _world
    with _lock:
        if _world is None:
            _world = init_from_env(backend)
        return _world


@atexit.register
def _leave():
    # A rank that exits without closing its communicators looks, to its peers, like a rank
    # that died: close the world (the communicators split from it close when collected).
    global _world
    with _lock:
        if _world is not None:
            _world.close()
            _world = None
