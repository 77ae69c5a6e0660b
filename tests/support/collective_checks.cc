#include "tests/support/collective_checks.h"

#include <algorithm>
#include <cstring>
#include <deque>

#include "tests/support/typed_values.h"

namespace weft::testing {
namespace {

using comm::Communicator;

struct Checker {
  Communicator& comm;
  std::vector<std::string> failures;

  // Compares `count` elements of `got` with expected(i), recording the first mismatch.
  template <typename Expected>
  void expect(const std::string& what, const void* got, size_t count, DType t, Expected expected) {
    for (size_t i = 0; i < count; i++) {
      double want = as_stored(expected(i), t), have = get_value(got, t, i);
      if (have != want) {
        failures.push_back("rank " + std::to_string(comm.rank()) + " " + what + ": element " +
                           std::to_string(i) + " is " + std::to_string(have) + ", expected " +
                           std::to_string(want));
        return;
      }
    }
  }
  static std::string label(const char* op, DType t, size_t count, const char* extra = "") {
    return std::string(op) + " " + dtype_name(t) + " count=" + std::to_string(count) + extra;
  }
};

// The matrix's buffers, kept until dropped with the Buffers: plain memory, or registered memory
// (comm.alloc) when the matrix asks for it.
class Buffers {
 public:
  Buffers(Communicator& comm, bool registered) : comm_(comm), registered_(registered) {}
  // `bytes` holding `data` when given (else zeros); one byte more, as make_data's.
  char* make(size_t bytes, const std::vector<char>& data = {}) {
    const size_t n = std::max(bytes + 1, data.size());
    char* p = registered_ ? held_.emplace_back(comm_.alloc(n)).as<char>()
                          : plain_.emplace_back(n).data();
    if (!data.empty()) std::memcpy(p, data.data(), data.size());
    return p;
  }

 private:
  Communicator& comm_;
  const bool registered_;
  std::deque<comm::RegisteredBuffer> held_;
  std::deque<std::vector<char>> plain_;
};

}  // namespace

std::vector<std::string> check_allreduce(Communicator& comm, size_t count, DType t, ReduceOp op,
                                         Device dev) {
  Checker c{comm, {}};
  int n = comm.size(), r = comm.rank();
  auto in = make_data(r, count, t);
  auto out = std::vector<char>(in.size());
  auto expected = [&](size_t i) { return reference(n, i, t, op); };
  std::string what = Checker::label("allreduce", t, count, (std::string(" ") + reduce_op_name(op)).c_str());
  comm.allreduce(Tensor::flat(in.data(), t, count, dev), Tensor::flat(out.data(), t, count, dev), op).wait();
  c.expect(what + " out-of-place", out.data(), count, t, expected);
  c.expect(what + " input untouched", in.data(), count, t, [&](size_t i) { return test_value(r, i, t); });
  comm.allreduce(Tensor::flat(in.data(), t, count, dev), op).wait();
  c.expect(what + " in-place", in.data(), count, t, expected);
  return c.failures;
}

std::vector<std::string> check_registered_allreduce(Communicator& comm, size_t count, DType t,
                                                    ReduceOp op, bool plain) {
  Checker c{comm, {}};
  const int n = comm.size(), r = comm.rank();
  const size_t bytes = count * dtype_size(t);
  auto input = make_data(r, count, t);
  auto expected = [&](size_t i) { return reference(n, i, t, op); };
  std::string what = Checker::label("registered allreduce", t, count,
                                    (std::string(" ") + reduce_op_name(op)).c_str());
  comm::RegisteredBuffer in = plain ? comm::RegisteredBuffer(Buffer(bytes)) : comm.alloc(bytes);
  comm::RegisteredBuffer out = plain ? comm::RegisteredBuffer(Buffer(bytes)) : comm.alloc(bytes);
  std::memcpy(in.data(), input.data(), bytes);
  comm.allreduce(in.view(t, count), out.view(t, count), op).wait();
  c.expect(what + " out-of-place", out.data(), count, t, expected);
  c.expect(what + " input untouched", in.data(), count, t,
           [&](size_t i) { return test_value(r, i, t); });
  comm.allreduce(in.view(t, count), op).wait();
  c.expect(what + " in-place", in.data(), count, t, expected);
  return c.failures;
}

std::vector<std::string> check_collectives(Communicator& comm, const CheckMatrix& m) {
  Checker c{comm, {}};
  const Device dev = m.device;
  int n = comm.size(), r = comm.rank();
  for (DType t : m.dtypes) {
    size_t esz = dtype_size(t);
    for (size_t count : m.counts) {
      Buffers buf(comm, m.registered);
      for (ReduceOp op : m.ops) {
        auto f = m.registered ? check_registered_allreduce(comm, count, t, op)
                              : check_allreduce(comm, count, t, op, dev);
        c.failures.insert(c.failures.end(), f.begin(), f.end());
        std::string extra = std::string(" ") + reduce_op_name(op);

        // reduce to each root in turn
        int root = static_cast<int>(count % n);
        char* in = buf.make(count * esz, make_data(r, count, t));
        char* out = buf.make(count * esz);
        comm.reduce(Tensor::flat(in, t, count, dev),
                    r == root ? Tensor::flat(out, t, count, dev) : Tensor(), root, op)
            .wait();
        if (r == root)
          c.expect(Checker::label("reduce", t, count, extra.c_str()), out, count, t,
                   [&](size_t i) { return reference(n, i, t, op); });

        // reduce_scatter: input holds n blocks; block b of rank r's input is data offset b*count
        char* rs_in = buf.make(count * n * esz, make_data(r, count * n, t));
        char* rs_out = buf.make(count * esz);
        comm.reduce_scatter(Tensor::flat(rs_in, t, count * n, dev),
                            Tensor::flat(rs_out, t, count, dev), op)
            .wait();
        c.expect(Checker::label("reduce_scatter", t, count, extra.c_str()), rs_out, count,
                 t, [&](size_t i) { return reference(n, r * count + i, t, op); });
      }

      // broadcast from a root that varies with the size
      int root = static_cast<int>((count + 1) % n);
      char* data = buf.make(count * esz, make_data(r, count, t));
      comm.broadcast(Tensor::flat(data, t, count, dev), root).wait();
      c.expect(Checker::label("broadcast", t, count), data, count, t,
               [&](size_t i) { return test_value(root, i, t); });

      // allgather: block b comes from rank b
      char* in = buf.make(count * esz, make_data(r, count, t));
      char* out = buf.make(count * n * esz);
      comm.allgather(Tensor::flat(in, t, count, dev), Tensor::flat(out, t, count * n, dev)).wait();
      c.expect(Checker::label("allgather", t, count), out, count * n, t,
               [&](size_t i) { return test_value(static_cast<int>(i / count), i % count, t); });

      // alltoall: rank r's block j (offset j*count) goes to rank j's block r
      char* a_in = buf.make(count * n * esz, make_data(r, count * n, t));
      char* a_out = buf.make(count * n * esz);
      comm.alltoall(Tensor::flat(a_in, t, count * n, dev), Tensor::flat(a_out, t, count * n, dev))
          .wait();
      c.expect(Checker::label("alltoall", t, count), a_out, count * n, t, [&](size_t i) {
        size_t src = i / count;
        return test_value(static_cast<int>(src), r * count + i % count, t);
      });

      // send/recv around the ring
      if (n > 1) {
        auto mine = make_data(r, count, t);
        std::vector<char> got(count * esz + 1);
        int right = (r + 1) % n, left = (r + n - 1) % n;
        auto s = comm.send(Tensor::flat(mine.data(), t, count, dev), right);
        comm.recv(Tensor::flat(got.data(), t, count, dev), left).wait();
        s.wait();
        c.expect(Checker::label("send/recv", t, count), got.data(), count, t,
                 [&](size_t i) { return test_value(left, i, t); });
      }
    }
  }
  comm.barrier().wait();
  return c.failures;
}

std::vector<std::string> check_batch_p2p(Communicator& comm, size_t count, Device dev) {
  Checker c{comm, {}};
  const int n = comm.size(), r = comm.rank();
  if (n < 2) return {};
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  // Message k of rank `src`: distinct for every (src, k), exact in f32 (test_value repeats
  // every 5 ranks, which could hide a message landing in the wrong buffer).
  auto payload = [](int src, int k, size_t i) {
    return static_cast<double>((src * 4 + k) * 131 + static_cast<int>(i % 127));
  };
  auto filled = [&](int k, size_t elements) {
    std::vector<float> v(elements);
    for (size_t i = 0; i < elements; i++) v[i] = static_cast<float>(payload(r, k, i));
    return v;
  };
  auto f32 = [&](std::vector<float>& v) {
    return Tensor::flat(v.data(), DType::f32, v.size(), dev);
  };
  using comm::P2P;

  // With 2 ranks both sends go to the one peer: it receives them in the order they were given.
  std::vector<float> to_right = filled(0, count), to_left = filled(1, count);
  std::vector<float> from_left(count, -1.0f), from_right(count, -1.0f);
  const P2P ring[] = {{P2P::send, f32(to_right), right},
                      {P2P::send, f32(to_left), left},
                      {P2P::recv, f32(from_left), left},
                      {P2P::recv, f32(from_right), right}};
  comm.batch_p2p(ring).wait();
  std::string size = " count=" + std::to_string(count);
  c.expect("batch_p2p from the left" + size, from_left.data(), count, DType::f32,
           [&](size_t i) { return payload(left, 0, i); });
  c.expect("batch_p2p from the right" + size, from_right.data(), count, DType::f32,
           [&](size_t i) { return payload(right, 1, i); });

  // Small messages, so a plain send completes before its receive is posted.
  for (int round = 0; round < 2; round++) {
    std::vector<float> mine = filled(2 + round, 7), got(7, -1.0f);
    if ((r + round) % 2 == 0) {
      comm.send_recv(f32(mine), right, f32(got), left).wait();
    } else {
      comm::Work s = comm.send(f32(mine), right);
      comm.recv(f32(got), left).wait();
      s.wait();
    }
    c.expect("send_recv beside plain send/recv, round " + std::to_string(round), got.data(), 7,
             DType::f32, [&](size_t i) { return payload(left, 2 + round, i); });
  }
  return c.failures;
}

}  // namespace weft::testing
