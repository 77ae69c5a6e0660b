#!/usr/bin/python3
"""torch.distributed on backend "weft" under weftrun (-n 2, -n 3): every collective the backend
offers, called as a PyTorch program calls them, against references computed from every rank's
inputs (seeded by rank); async work and its future; an error torch raises with weft's message.
"""
import unittest

import torch
import torch.distributed as dist

import weft.torch  # noqa: F401  registers the backend

dist.init_process_group("weft")
RANK, SIZE = dist.get_rank(), dist.get_world_size()


def inputs(rank, n, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(1000 * seed + rank)
    return torch.randint(1, 4, (n,), generator=g).to(dtype)


def every_rank(n, dtype=torch.float32, seed=0):
    return torch.stack([inputs(r, n, dtype, seed) for r in range(SIZE)])


class TorchBackend(unittest.TestCase):
    def test_backend_name(self):
        self.assertEqual(dist.get_backend(), "weft")

    def test_all_reduce_ops(self):
        for op, reference in ((dist.ReduceOp.SUM, lambda t: t.sum(0)),
                              (dist.ReduceOp.MAX, lambda t: t.max(0).values),
                              (dist.ReduceOp.MIN, lambda t: t.min(0).values),
                              (dist.ReduceOp.PRODUCT, lambda t: t.prod(0))):
            for dtype in (torch.float32, torch.float64, torch.int64, torch.bfloat16):
                t = inputs(RANK, 100, dtype)
                dist.all_reduce(t, op=op)
                self.assertTrue(torch.equal(t, reference(every_rank(100, torch.float64)).to(dtype)),
                                f"{op} {dtype}")

    def test_broadcast_and_bool(self):
        for dtype in (torch.float32, torch.bool):
            t = inputs(RANK, 50, seed=1).gt(2).to(dtype)
            dist.broadcast(t, src=SIZE - 1)
            self.assertTrue(torch.equal(t, inputs(SIZE - 1, 50, seed=1).gt(2).to(dtype)))

    def test_reduce_in_place_on_the_root(self):
        t = inputs(RANK, 40, seed=2)
        mine = t.clone()
        dist.reduce(t, dst=0)
        if RANK == 0:
            self.assertTrue(torch.equal(t, every_rank(40, seed=2).sum(0)))
        else:
            self.assertTrue(torch.equal(t, mine))  # others' tensors are inputs only

    def test_all_gather_list_and_base(self):
        t = inputs(RANK, 30, seed=3)
        outs = [torch.empty(30) for _ in range(SIZE)]
        dist.all_gather(outs, t)
        for r in range(SIZE):
            self.assertTrue(torch.equal(outs[r], inputs(r, 30, seed=3)))
        flat = torch.empty(30 * SIZE)
        dist.all_gather_into_tensor(flat, t)
        self.assertTrue(torch.equal(flat, every_rank(30, seed=3).reshape(-1)))

    def test_reduce_scatter(self):
        blocks = [inputs(RANK, 10, seed=4 + j) for j in range(SIZE)]
        out = torch.empty(10)
        dist.reduce_scatter(out, blocks)
        self.assertTrue(torch.equal(out, every_rank(10, seed=4 + RANK).sum(0)))

    def test_all_to_all_single(self):
        t = inputs(RANK, 5 * SIZE, seed=9)
        out = torch.empty_like(t)
        dist.all_to_all_single(out, t)
        expected = torch.cat([inputs(r, 5 * SIZE, seed=9)[5 * RANK:5 * (RANK + 1)]
                              for r in range(SIZE)])
        self.assertTrue(torch.equal(out, expected))

    def test_send_recv_ring(self):
        right, left = (RANK + 1) % SIZE, (RANK - 1) % SIZE
        t = inputs(RANK, 20, seed=10)
        got = torch.empty(20)
        sent = dist.isend(t, right)
        dist.recv(got, left)
        sent.wait()
        self.assertTrue(torch.equal(got, inputs(left, 20, seed=10)))

    def test_async_work_and_future(self):
        ts = [inputs(RANK, 1000, seed=11 + i) for i in range(3)]
        works = [dist.all_reduce(t, async_op=True) for t in ts]
        future = works[-1].get_future()
        for w in works:
            w.wait()
            self.assertTrue(w.is_completed())
        self.assertTrue(torch.equal(future.wait()[0], every_rank(1000, seed=13).sum(0)))
        for i, t in enumerate(ts):
            self.assertTrue(torch.equal(t, every_rank(1000, seed=11 + i).sum(0)))
        dist.barrier()

    def test_a_new_group_of_every_rank(self):
        group = dist.new_group(ranks=list(range(SIZE)))
        t = torch.full((3,), float(RANK))
        dist.all_reduce(t, group=group)
        self.assertTrue(torch.equal(t, torch.full((3,), float(sum(range(SIZE))))))

    def test_an_error_names_what_to_do(self):
        with self.assertRaisesRegex(RuntimeError, "contiguous"):
            dist.all_reduce(torch.zeros(4, 4).t())
        with self.assertRaisesRegex(RuntimeError, "weft"):
            dist.all_reduce(torch.zeros(4, dtype=torch.int8))


if __name__ == "__main__":
    unittest.main(verbosity=1)
