#!/usr/bin/python3
"""The weft Python module under weftrun (-n 2, -n 3): every collective on numpy arrays and torch
tensors against numpy references computed from every rank's inputs, which each rank can make
(they are seeded by rank); in place and out of place, every dtype, async requests, the GIL
released while waiting, and errors as weft.Error with weft's code.

Every rank runs the same tests in the same order (unittest sorts them), as collectives need.
"""
import threading
import time
import unittest

import numpy as np

import weft

try:
    import torch
except ImportError:  # the torch cases are skipped where Debian's python3-torch is missing
    torch = None

COMM = weft.init()
RANK, SIZE = COMM.rank, COMM.size
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8]


def inputs(rank, n, dtype, seed=0):
    """Rank `rank`'s input: small integers, so every reduction is exact in every dtype."""
    rng = np.random.default_rng(1000 * seed + rank)
    return rng.integers(1, 4, size=n).astype(dtype)


def every_rank(n, dtype, seed=0):
    return np.stack([inputs(r, n, dtype, seed) for r in range(SIZE)])


REFERENCE = {weft.SUM: np.sum, weft.MAX: np.max, weft.MIN: np.min, weft.PROD: np.prod}


class Collectives(unittest.TestCase):
    def test_allreduce_every_op_and_dtype_in_place(self):
        for dtype in DTYPES:
            for op, reference in REFERENCE.items():
                x = inputs(RANK, 37, dtype)
                COMM.allreduce(x, op=op)
                expected = reference(every_rank(37, dtype), axis=0).astype(dtype)
                np.testing.assert_array_equal(x, expected, err_msg=f"{dtype} {op}")

    def test_allreduce_avg_and_out_of_place(self):
        x = inputs(RANK, 1000, np.float64)
        before = x.copy()
        out = np.empty_like(x)
        COMM.allreduce(x, out=out, op=weft.AVG)
        np.testing.assert_allclose(out, every_rank(1000, np.float64).mean(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(x, before)  # the input is left alone

    def test_allreduce_large_multidimensional(self):
        x = inputs(RANK, 3 * 65536, np.float32).reshape(3, 256, 256)
        COMM.allreduce(x)
        expected = every_rank(3 * 65536, np.float32).sum(axis=0).reshape(3, 256, 256)
        np.testing.assert_array_equal(x, expected)

    @unittest.skipIf(torch is None, "no torch")
    def test_torch_tensors_zero_copy_every_dtype(self):
        for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int32,
                      torch.int64):
            t = torch.from_numpy(inputs(RANK, 50, np.int64)).to(dtype)
            address = t.data_ptr()
            COMM.allreduce(t)
            expected = torch.from_numpy(every_rank(50, np.int64).sum(axis=0)).to(dtype)
            self.assertTrue(torch.equal(t, expected), dtype)
            self.assertEqual(t.data_ptr(), address)

    @unittest.skipIf(torch is None, "no torch")
    def test_torch_tensor_that_requires_grad(self):
        w = torch.ones(5, requires_grad=True)
        with torch.no_grad():
            COMM.allreduce(w)
        self.assertTrue(torch.equal(w.detach(), torch.full((5,), float(SIZE))))

    def test_numpy_view_is_written_in_place(self):
        # A contiguous slice of a bigger array: the rest must be untouched.
        big = np.zeros(10, np.int32)
        big[2:6] = RANK + 1
        COMM.allreduce(big[2:6])
        total = SIZE * (SIZE + 1) // 2
        np.testing.assert_array_equal(big, [0, 0, total, total, total, total, 0, 0, 0, 0])

    def test_broadcast(self):
        root = SIZE - 1
        x = inputs(RANK, 100, np.float32, seed=1)
        COMM.broadcast(x, root=root)
        np.testing.assert_array_equal(x, inputs(root, 100, np.float32, seed=1))

    def test_reduce_to_a_root(self):
        root = 1 % SIZE
        x = inputs(RANK, 64, np.int64, seed=2)
        out = np.zeros_like(x) if RANK == root else None
        COMM.reduce(x, out=out, root=root, op=weft.MAX)
        if RANK == root:
            np.testing.assert_array_equal(out, every_rank(64, np.int64, seed=2).max(axis=0))

    def test_allgather(self):
        x = inputs(RANK, 33, np.float32, seed=3)
        out = np.empty((SIZE, 33), np.float32)
        COMM.allgather(x, out)
        np.testing.assert_array_equal(out, every_rank(33, np.float32, seed=3))

    def test_reduce_scatter(self):
        x = inputs(RANK, 20 * SIZE, np.float64, seed=4)
        out = np.empty(20, np.float64)
        COMM.reduce_scatter(x, out)
        total = every_rank(20 * SIZE, np.float64, seed=4).sum(axis=0)
        np.testing.assert_array_equal(out, total[20 * RANK:20 * (RANK + 1)])

    def test_alltoall(self):
        x = inputs(RANK, 7 * SIZE, np.int32, seed=5)
        out = np.empty_like(x)
        COMM.alltoall(x, out)
        expected = np.concatenate(
            [inputs(r, 7 * SIZE, np.int32, seed=5)[7 * RANK:7 * (RANK + 1)] for r in range(SIZE)])
        np.testing.assert_array_equal(out, expected)

    def test_send_recv_around_a_ring(self):
        right, left = (RANK + 1) % SIZE, (RANK - 1) % SIZE
        x = inputs(RANK, 300, np.float32, seed=6)
        got = np.empty_like(x)
        sent = COMM.send(x, right, async_op=True)
        COMM.recv(got, left)
        sent.wait()
        np.testing.assert_array_equal(got, inputs(left, 300, np.float32, seed=6))

    def test_async_requests_complete_in_order(self):
        xs = [inputs(RANK, 1000, np.float32, seed=7 + i) for i in range(4)]
        requests = [COMM.allreduce(x, async_op=True) for x in xs]
        while not requests[0].test():
            time.sleep(0.001)
        for r in requests:
            r.wait()
        requests[0].wait()  # done already: at once
        for i, x in enumerate(xs):
            np.testing.assert_array_equal(x, every_rank(1000, np.float32, seed=7 + i).sum(axis=0))

    def test_wait_releases_the_gil(self):
        # Rank 0 comes to the barrier late; meanwhile the others' Python threads must run.
        ticks = []
        stop = threading.Event()

        def tick():
            while not stop.is_set():
                ticks.append(1)
                time.sleep(0.01)

        if RANK == 0:
            time.sleep(0.5)
            COMM.barrier()
            return
        thread = threading.Thread(target=tick)
        thread.start()
        try:
            COMM.barrier()
        finally:
            stop.set()
            thread.join()
        self.assertGreater(len(ticks), 10)

    def test_split(self):
        sub = COMM.split(RANK % 2)
        members = [r for r in range(SIZE) if r % 2 == RANK % 2]
        self.assertEqual(sub.size, len(members))
        self.assertEqual(sub.rank, members.index(RANK))
        x = np.array([RANK], np.int64)
        sub.allreduce(x)
        self.assertEqual(int(x[0]), sum(members))
        sub.close()
        rest = COMM.split(-1 if RANK == 0 else 0)  # a negative color joins no group
        if RANK == 0:
            self.assertIsNone(rest)
        else:
            self.assertEqual(rest.size, SIZE - 1)
            rest.close()

    def test_errors_found_before_weft_runs(self):
        x = np.zeros(4, np.float32)
        cases = [
            lambda: COMM.allgather(x, np.zeros(4 * SIZE + 1, np.float32)),  # wrong size
            lambda: COMM.allreduce(x, out=np.zeros(4, np.float64)),  # wrong dtype
            lambda: COMM.allreduce(np.zeros((4, 4), np.float32)[:, 0]),  # not contiguous
            lambda: COMM.allreduce(np.zeros(4, np.uint32)),  # a dtype weft lacks
            lambda: COMM.broadcast(np.frombuffer(b"abcd", np.uint8)),  # read-only
            lambda: COMM.allreduce(x.astype(">f4")),  # big-endian
            lambda: COMM.reduce_scatter(np.zeros(SIZE + 1, np.float32), x),  # no equal blocks
            lambda: COMM.alltoall(np.zeros(SIZE + 1, np.float32), np.zeros(SIZE + 1, np.float32)),
            lambda: COMM.reduce(x, root=RANK),  # the root without out
        ]
        if torch is not None:
            cases.append(lambda: COMM.allreduce(torch.zeros(3, dtype=torch.int8)))  # via DLPack
        for case in cases:
            with self.assertRaises(weft.Error) as caught:
                case()
            self.assertEqual(caught.exception.code, weft.Status.INVALID_ARGUMENT)
        with self.assertRaises(TypeError):
            COMM.allreduce([1.0, 2.0])

    def test_an_abort_reaches_every_rank_as_aborted(self):
        sub = COMM.split(0)
        if RANK == SIZE - 1:
            sub.abort("the test aborts")
        with self.assertRaises(weft.Error) as caught:
            sub.allreduce(np.zeros(1000, np.float32))
        self.assertEqual(caught.exception.code, weft.Status.ABORTED, str(caught.exception))
        sub.close()

    def test_a_closed_communicator_says_so(self):
        sub = COMM.split(0)
        sub.close()
        sub.close()  # twice is fine
        with self.assertRaises(weft.Error) as caught:
            sub.allreduce(np.zeros(1, np.float32))
        self.assertIn("closed", str(caught.exception))

    def test_ranks_that_disagree_fail_with_weft_code(self):
        # On a group of its own: a mismatch leaves the group unusable, not the world.
        sub = COMM.split(0)
        x = np.zeros(8 + RANK, np.float32)  # every rank a different count
        with self.assertRaises(weft.Error) as caught:
            sub.allreduce(x)
        self.assertEqual(caught.exception.code, weft.Status.INVALID_ARGUMENT)
        self.assertIn("InvalidArgument", str(caught.exception))
        self.assertIsInstance(caught.exception, RuntimeError)
        sub.close()


if __name__ == "__main__":
    unittest.main(verbosity=1)
