// The native part of the `weft` Python package (module weft._weft): communicators, their
// collectives on arrays, requests, and weft.Error, over the C API (include/weft/weft.h) in
// libweft.so. weft/__init__.py is the package around it.
//
// Every op checks its arrays (dtype, element counts) before weft sees them, since the C API
// takes counts on trust; runs with the GIL released, so other Python threads go on while it
// waits; and raises weft.Error carrying weft's status code when it fails.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::optional arguments

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "include/weft/weft.h"
#include "python/array_view.h"
#include "python/status_error.h"

namespace weft::python {
namespace {

using Start = std::function<int(weft_request_t*)>;

// A started op: the C API's request and the arrays it reads and writes, kept alive until it is
// done.
class Request {
 public:
  Request(weft_request_t request, std::vector<ArrayView> arrays)
      : request_(request), arrays_(std::move(arrays)) {}
  Request(Request&& other) noexcept
      : request_(std::exchange(other.request_, nullptr)), arrays_(std::move(other.arrays_)) {}
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  Request& operator=(Request&&) = delete;
  // An op nobody waited for still writes into its arrays: wait before letting them go. Its
  // failure has no one to go to (the communicator's next op reports a broken group).
  ~Request() {
    if (request_ == nullptr) return;
    py::gil_scoped_release unlocked;
    weft_wait(request_);
  }

  // Waits for the op (raises its failure); at once when it is already done.
  void wait() {
    if (request_ == nullptr) return;
    int status;
    {
      py::gil_scoped_release unlocked;
      status = weft_wait(std::exchange(request_, nullptr));
    }
    arrays_.clear();
    check(status);
  }

  // Whether the op is done (raises its failure the first time it says so).
  bool test() {
    if (request_ == nullptr) return true;
    int done = 0;
    const int status = weft_test(request_, &done);
    if (done) {
      request_ = nullptr;
      arrays_.clear();
    }
    check(status);
    return done != 0;
  }

 private:
  weft_request_t request_;
  std::vector<ArrayView> arrays_;
};

// A communicator the module owns: destroyed by close(), or when Python drops it.
class Comm {
 public:
  explicit Comm(weft_comm_t handle) : handle_(handle) {}
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ~Comm() { close(); }

  // Finishes the communicator's ops (each bounded by its deadline) and frees it; later calls
  // fail. Safe to call twice.
  void close() {
    if (handle_ == nullptr) return;
    py::gil_scoped_release unlocked;
    weft_comm_destroy(std::exchange(handle_, nullptr));
  }

  // Hands the communicator to its new owner (weft.torch's process group) as an address.
  uintptr_t release() { return reinterpret_cast<uintptr_t>(std::exchange(get(), nullptr)); }

  weft_comm_t& get() {
    if (handle_ == nullptr)
      invalid("this communicator is closed (close() was called, or weft.torch took it over)");
    return handle_;
  }

  int rank() {
    int r = 0;
    check(weft_comm_rank(get(), &r));
    return r;
  }
  int size() {
    int s = 0;
    check(weft_comm_size(get(), &s));
    return s;
  }

  std::unique_ptr<Comm> split(int color, std::optional<int> key) {
    weft_comm_t child = nullptr;
    const int k = key ? *key : rank();
    int status;
    {
      py::gil_scoped_release unlocked;
      status = weft_comm_split(get(), color, k, &child);
    }
    check(status);
    return child ? std::make_unique<Comm>(child) : nullptr;
  }

  void abort(const std::string& reason) { check(weft_comm_abort(get(), reason.c_str())); }

  // Starts an op on `arrays`: returns a Request when `async_op`, else waits for it and returns
  // None.
  py::object run(std::vector<ArrayView> arrays, bool async_op, const Start& start) {
    weft_request_t request = nullptr;
    int status;
    {
      py::gil_scoped_release unlocked;
      status = start(&request);
      if (status == WEFT_SUCCESS && !async_op) status = weft_wait(std::exchange(request, nullptr));
    }
    check(status);
    if (!async_op) return py::none();
    return py::cast(Request(request, std::move(arrays)));
  }

 private:
  weft_comm_t handle_;
};

std::string describe(const ArrayView& a) {
  return std::to_string(a.count()) + " elements of " + a.dtype_name();
}

// `b` must have a's dtype and `count` elements.
void expect(const char* op, const char* b_name, const ArrayView& b, const ArrayView& a,
            size_t count, const std::string& rule) {
  if (b.dtype() != a.dtype() || b.count() != count)
    invalid(std::string(op) + ": " + b_name + " has " + describe(b) + " and x " + describe(a) +
            ": " + rule);
}

py::object allreduce(Comm& c, py::handle x, py::handle out, weft_op_t op, bool async_op) {
  ArrayView in = ArrayView::of(x, "x", out.is_none());
  ArrayView result = out.is_none() ? in : ArrayView::of(out, "out", true);
  expect("allreduce", "out", result, in, in.count(), "out must match x");
  weft_comm_t h = c.get();
  return c.run({in, result}, async_op, [&](weft_request_t* r) {
    return weft_iallreduce(h, in.data(), result.data(), in.count(), in.dtype(), op, r);
  });
}

py::object broadcast(Comm& c, py::handle x, int root, bool async_op) {
  ArrayView data = ArrayView::of(x, "x", true);
  weft_comm_t h = c.get();
  return c.run({data}, async_op, [&](weft_request_t* r) {
    return weft_ibroadcast(h, data.data(), data.count(), data.dtype(), root, r);
  });
}

py::object reduce(Comm& c, py::handle x, py::handle out, int root, weft_op_t op, bool async_op) {
  ArrayView in = ArrayView::of(x, "x", false);
  std::vector<ArrayView> arrays{in};
  void* result = nullptr;
  if (c.rank() == root) {
    if (out.is_none())
      invalid("reduce: rank " + std::to_string(root) +
              " is the root and needs out, where the reduction goes");
    arrays.push_back(ArrayView::of(out, "out", true));
    expect("reduce", "out", arrays.back(), in, in.count(), "out must match x");
    result = arrays.back().data();
  }
  weft_comm_t h = c.get();
  return c.run(std::move(arrays), async_op, [&](weft_request_t* r) {
    return weft_ireduce(h, in.data(), result, in.count(), in.dtype(), op, root, r);
  });
}

py::object allgather(Comm& c, py::handle x, py::handle out, bool async_op) {
  ArrayView in = ArrayView::of(x, "x", false), result = ArrayView::of(out, "out", true);
  const size_t n = static_cast<size_t>(c.size());
  expect("allgather", "out", result, in, n * in.count(),
         "out must hold size() x x's elements, of x's dtype");
  weft_comm_t h = c.get();
  return c.run({in, result}, async_op, [&](weft_request_t* r) {
    return weft_iallgather(h, in.data(), result.data(), in.count(), in.dtype(), r);
  });
}

py::object reduce_scatter(Comm& c, py::handle x, py::handle out, weft_op_t op, bool async_op) {
  ArrayView in = ArrayView::of(x, "x", false), result = ArrayView::of(out, "out", true);
  const size_t n = static_cast<size_t>(c.size());
  if (in.count() % n != 0)
    invalid("reduce_scatter: x has " + describe(in) + ", not a multiple of the group's size " +
            std::to_string(n));
  expect("reduce_scatter", "out", result, in, in.count() / n,
         "out must hold x's elements / size(), of x's dtype");
  weft_comm_t h = c.get();
  return c.run({in, result}, async_op, [&](weft_request_t* r) {
    return weft_ireduce_scatter(h, in.data(), result.data(), result.count(), in.dtype(), op, r);
  });
}

py::object alltoall(Comm& c, py::handle x, py::handle out, bool async_op) {
  ArrayView in = ArrayView::of(x, "x", false), result = ArrayView::of(out, "out", true);
  const size_t n = static_cast<size_t>(c.size());
  if (in.count() % n != 0)
    invalid("alltoall: x has " + describe(in) + ", not a multiple of the group's size " +
            std::to_string(n) + " (one equal block per rank)");
  expect("alltoall", "out", result, in, in.count(), "out must match x");
  weft_comm_t h = c.get();
  return c.run({in, result}, async_op, [&](weft_request_t* r) {
    return weft_ialltoall(h, in.data(), result.data(), in.count() / n, in.dtype(), r);
  });
}

py::object send(Comm& c, py::handle x, int peer, bool async_op) {
  ArrayView data = ArrayView::of(x, "x", false);
  weft_comm_t h = c.get();
  return c.run({data}, async_op, [&](weft_request_t* r) {
    return weft_isend(h, data.data(), data.count(), data.dtype(), peer, r);
  });
}

py::object recv(Comm& c, py::handle x, int peer, bool async_op) {
  ArrayView data = ArrayView::of(x, "x", true);
  weft_comm_t h = c.get();
  return c.run({data}, async_op, [&](weft_request_t* r) {
    return weft_irecv(h, data.data(), data.count(), data.dtype(), peer, r);
  });
}

py::object barrier(Comm& c, bool async_op) {
  weft_comm_t h = c.get();
  return c.run({}, async_op, [&](weft_request_t* r) { return weft_ibarrier(h, r); });
}

std::unique_ptr<Comm> init_from_env(std::optional<std::string> backend) {
  weft_comm_t handle = nullptr;
  int status;
  {
    py::gil_scoped_release unlocked;
    status = weft_init_from_env_backend(backend ? backend->c_str() : nullptr, &handle);
  }
  check(status);
  return std::make_unique<Comm>(handle);
}

}  // namespace
}  // namespace weft::python

PYBIND11_MODULE(_weft, m) {
  using namespace weft::python;
  m.doc() = "weft's collectives on numpy arrays and torch tensors (see the weft package)";

  py::enum_<weft_status_t>(m, "Status", py::arithmetic(), "weft's status codes (weft.h)")
      .value("SUCCESS", WEFT_SUCCESS)
      .value("INVALID_ARGUMENT", WEFT_ERR_INVALID_ARGUMENT)
      .value("TIMEOUT", WEFT_ERR_TIMEOUT)
      .value("PEER_LOST", WEFT_ERR_PEER_LOST)
      .value("ABORTED", WEFT_ERR_ABORTED)
      .value("CORRUPT", WEFT_ERR_CORRUPT)
      .value("IO", WEFT_ERR_IO)
      .value("UNAVAILABLE", WEFT_ERR_UNAVAILABLE)
      .value("INTERNAL", WEFT_ERR_INTERNAL);
  py::enum_<weft_op_t>(m, "Op", "reductions")
      .value("SUM", WEFT_SUM)
      .value("AVG", WEFT_AVG)
      .value("MAX", WEFT_MAX)
      .value("MIN", WEFT_MIN)
      .value("PROD", WEFT_PROD)
      .export_values();

  // Leaked on purpose: the type must outlive every module that may still raise it at exit.
  static PyObject* error_type = PyErr_NewExceptionWithDoc(
      "weft.Error",
      "A failure weft reported: `code` is its weft.Status (TIMEOUT, PEER_LOST, ...), the "
      "message says what was wrong and what to do.",
      PyExc_RuntimeError, nullptr);
  m.attr("Error") = py::reinterpret_borrow<py::object>(error_type);
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const StatusError& e) {
      py::object error = py::reinterpret_borrow<py::object>(error_type)(e.what());
      error.attr("code") = py::cast(static_cast<weft_status_t>(e.code()));
      PyErr_SetObject(error_type, error.ptr());
    }
  });

  py::class_<Request>(m, "Request", "A started op: wait() for it, or test() whether it is done")
      .def("wait", &Request::wait, "Waits for the op (the GIL released); raises its failure")
      .def("test", &Request::test, "Whether the op is done (raises its failure once done)");

  py::class_<Comm>(m, "Communicator", "A group of ranks (weft.init() gives the world's)")
      .def_property_readonly("rank", &Comm::rank)
      .def_property_readonly("size", &Comm::size)
      .def("split", &Comm::split, py::arg("color"), py::arg("key") = py::none(),
           "Collective: ranks with the same color form a new communicator, ordered by (key, "
           "rank); a negative color returns None")
      .def("close", &Comm::close, "Finishes this communicator's ops and frees it")
      .def("abort", &Comm::abort, py::arg("reason") = "abort() called",
           "Fails every pending op here and on the peers")
      .def("_release", &Comm::release)
      .def("allreduce", &allreduce, py::arg("x"), py::arg("out") = py::none(),
           py::arg("op") = WEFT_SUM, py::arg("async_op") = false,
           "out (x itself when None) = the reduction of x over the ranks")
      .def("broadcast", &broadcast, py::arg("x"), py::arg("root") = 0, py::arg("async_op") = false,
           "x = root's x")
      .def("reduce", &reduce, py::arg("x"), py::arg("out") = py::none(), py::arg("root") = 0,
           py::arg("op") = WEFT_SUM, py::arg("async_op") = false,
           "root's out = the reduction of x over the ranks (out is needed on root only)")
      .def("allgather", &allgather, py::arg("x"), py::arg("out"), py::arg("async_op") = false,
           "out (size x x's elements) = every rank's x, in rank order")
      .def("reduce_scatter", &reduce_scatter, py::arg("x"), py::arg("out"),
           py::arg("op") = WEFT_SUM, py::arg("async_op") = false,
           "out = block `rank` of the reduction of x (size blocks) over the ranks")
      .def("alltoall", &alltoall, py::arg("x"), py::arg("out"), py::arg("async_op") = false,
           "block j of x (size equal blocks) goes to rank j's block `rank` of out")
      .def("send", &send, py::arg("x"), py::arg("peer"), py::arg("async_op") = false)
      .def("recv", &recv, py::arg("x"), py::arg("peer"), py::arg("async_op") = false)
      .def("barrier", &barrier, py::arg("async_op") = false);

  m.def("init_from_env", &init_from_env, py::arg("backend") = py::none(),
        "A new world communicator from the launcher's environment (weft.init() keeps one)");
}
