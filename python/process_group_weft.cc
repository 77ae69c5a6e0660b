#include "python/process_group_weft.h"

#include <ATen/core/ivalue.h>

#include <string>
#include <utility>

namespace weft::python {
namespace {

weft_dtype_t dtype_of(const at::Tensor& t, bool reduced) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return WEFT_FLOAT32;
    case at::kHalf:
      return WEFT_FLOAT16;
    case at::kBFloat16:
      return WEFT_BFLOAT16;
    case at::kDouble:
      return WEFT_FLOAT64;
    case at::kInt:
      return WEFT_INT32;
    case at::kLong:
      return WEFT_INT64;
    case at::kByte:
      return WEFT_UINT8;
    case at::kBool:
      if (!reduced) return WEFT_UINT8;  // moved as bytes; a sum of bools would not be a bool
      break;
    default:
      break;
  }
  TORCH_CHECK(false, "weft: tensors of ", t.scalar_type(), reduced ? " cannot be reduced" : "",
              ": weft takes float32, float16, bfloat16, float64, int32, int64 and uint8 (and ",
              "bool where nothing is reduced)");
}

weft_op_t op_of(const c10d::ReduceOp& op) {
  switch (op.op_) {
    case c10d::ReduceOp::SUM:
      return WEFT_SUM;
    case c10d::ReduceOp::AVG:
      return WEFT_AVG;
    case c10d::ReduceOp::PRODUCT:
      return WEFT_PROD;
    case c10d::ReduceOp::MIN:
      return WEFT_MIN;
    case c10d::ReduceOp::MAX:
      return WEFT_MAX;
    default:
      TORCH_CHECK(false, "weft: reduce op ", static_cast<int>(op.op_),
                  " is not one of weft's: use SUM, AVG, PRODUCT, MIN or MAX");
  }
}

void check_tensor(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.device().is_cpu(), "weft: ", op, " takes CPU tensors (got one on ", t.device(),
              ")");
  TORCH_CHECK(t.is_contiguous(), "weft: ", op, " takes contiguous tensors: call .contiguous()");
}

// c10d passes a list per process; weft runs one tensor per process (as Gloo does on the CPU).
const at::Tensor& the_tensor(const std::vector<at::Tensor>& tensors, const char* op) {
  TORCH_CHECK(tensors.size() == 1, "weft: ", op, " takes one tensor per process, got ",
              tensors.size());
  check_tensor(tensors[0], op);
  return tensors[0];
}

size_t count_of(const at::Tensor& t) { return static_cast<size_t>(t.numel()); }

// The Python exception torch raises for a failed op carries this text: weft's status and its
// message, which names the rank and says what to do.
// Call it on the thread that made the failed call (the message is per thread).
std::exception_ptr failure() {
  return std::make_exception_ptr(std::runtime_error(std::string("weft: ") + weft_last_error()));
}

}  // namespace

// A c10d Work completed by the group's completion thread, with a future for DDP's comm hooks.
class ProcessGroupWeft::WeftWork : public c10d::Work {
 public:
  WeftWork(c10d::OpType type, std::vector<at::Tensor> outputs)
      : c10d::Work(-1, type),
        outputs_(std::move(outputs)),
        future_(c10::make_intrusive<at::ivalue::Future>(
            c10::ListType::create(c10::TensorType::get()))) {}

  std::vector<at::Tensor> result() override { return outputs_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }

  void complete(std::exception_ptr error) {
    finish(error);
    if (error)
      future_->setError(error);
    else
      future_->markCompleted(c10::IValue(outputs_));
  }

 private:
  std::vector<at::Tensor> outputs_;
  c10::intrusive_ptr<at::ivalue::Future> future_;
};

ProcessGroupWeft::ProcessGroupWeft(weft_comm_t comm, int rank, int size)
    : c10d::ProcessGroup(rank, size), comm_(comm) {
  completer_ = std::thread([this] { complete_in_order(); });
}

ProcessGroupWeft::~ProcessGroupWeft() { close(); }

void ProcessGroupWeft::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_) return;
    closing_ = true;
  }
  queued_.notify_all();
  completer_.join();  // every started op completed: each wait is bounded by WEFT_TIMEOUT
  weft_comm_destroy(comm_);
  comm_ = nullptr;
}

void ProcessGroupWeft::complete_in_order() {
  for (;;) {
    Pending op;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queued_.wait(lock, [&] { return closing_ || !pending_.empty(); });
      if (pending_.empty()) return;  // closing, and nothing left
      op = std::move(pending_.front());
      pending_.pop_front();
    }
    const int status = weft_wait(op.request);
    std::exception_ptr error = status == WEFT_SUCCESS ? nullptr : failure();
    if (!error && op.then) {
      try {
        op.then();
      } catch (...) {
        error = std::current_exception();
      }
    }
    op.work->complete(error);
  }
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::start(c10d::OpType type,
                                                       std::vector<at::Tensor> outputs,
                                                       std::vector<at::Tensor> keep,
                                                       const StartFn& start_op,
                                                       std::function<void()> then) {
  auto work = c10::make_intrusive<WeftWork>(type, std::move(outputs));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    TORCH_CHECK(!closing_, "weft: this process group is closed (the interpreter is exiting)");
    weft_request_t request = nullptr;
    const int status = start_op(comm_, &request);
    if (status != WEFT_SUCCESS) std::rethrow_exception(failure());
    pending_.push_back(Pending{request, work, std::move(keep), std::move(then)});
  }
  queued_.notify_one();
  return work;
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::broadcast(std::vector<at::Tensor>& tensors,
                                                           const c10d::BroadcastOptions& opts) {
  at::Tensor t = the_tensor(tensors, "broadcast");
  const int root = static_cast<int>(opts.rootRank);
  return start(c10d::OpType::BROADCAST, {t}, {t}, [&](weft_comm_t c, weft_request_t* r) {
    return weft_ibroadcast(c, t.data_ptr(), count_of(t), dtype_of(t, false), root, r);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::allreduce(std::vector<at::Tensor>& tensors,
                                                           const c10d::AllreduceOptions& opts) {
  at::Tensor t = the_tensor(tensors, "allreduce");
  const weft_op_t op = op_of(opts.reduceOp);
  return start(c10d::OpType::ALLREDUCE, {t}, {t}, [&](weft_comm_t c, weft_request_t* r) {
    return weft_iallreduce(c, t.data_ptr(), t.data_ptr(), count_of(t), dtype_of(t, true), op, r);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::reduce(std::vector<at::Tensor>& tensors,
                                                        const c10d::ReduceOptions& opts) {
  at::Tensor t = the_tensor(tensors, "reduce");
  const int root = static_cast<int>(opts.rootRank);
  const weft_op_t op = op_of(opts.reduceOp);
  // c10d's reduce is in place on the root; weft's reads one buffer and writes another.
  at::Tensor in = getRank() == root ? t.clone() : t;
  void* out = getRank() == root ? t.data_ptr() : nullptr;
  return start(c10d::OpType::REDUCE, {t}, {t, in}, [&](weft_comm_t c, weft_request_t* r) {
    return weft_ireduce(c, in.data_ptr(), out, count_of(t), dtype_of(t, true), op, root, r);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::_allgather_base(at::Tensor& output,
                                                                 at::Tensor& input,
                                                                 const c10d::AllgatherOptions&) {
  check_tensor(input, "allgather");
  check_tensor(output, "allgather");
  TORCH_CHECK(
      output.numel() == input.numel() * getSize() && output.scalar_type() == input.scalar_type(),
      "weft: allgather's output must hold world size x the input's elements, of its "
      "dtype");
  at::Tensor in = input, out = output;
  return start(c10d::OpType::_ALLGATHER_BASE, {out}, {in, out},
               [&](weft_comm_t c, weft_request_t* r) {
                 return weft_iallgather(c, in.data_ptr(), out.data_ptr(), count_of(in),
                                        dtype_of(in, false), r);
               });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions&) {
  at::Tensor in = the_tensor(inputs, "allgather");
  TORCH_CHECK(outputs.size() == 1 && outputs[0].size() == static_cast<size_t>(getSize()),
              "weft: allgather takes one list of world size tensors per process");
  std::vector<at::Tensor> list = outputs[0];
  for (const at::Tensor& o : list)
    TORCH_CHECK(o.numel() == in.numel() && o.scalar_type() == in.scalar_type(),
                "weft: allgather's outputs must each match the input's size and dtype");
  // Into one flat buffer, then into the list once the op is done (the list's tensors need
  // not be adjacent).
  at::Tensor flat = at::empty({in.numel() * getSize()}, in.options());
  auto copy_out = [flat, list, n = in.numel()]() mutable {
    for (size_t i = 0; i < list.size(); ++i)
      list[i].view({-1}).copy_(flat.narrow(0, static_cast<int64_t>(i) * n, n));
  };
  return start(
      c10d::OpType::ALLGATHER, list, {in, flat},
      [&](weft_comm_t c, weft_request_t* r) {
        return weft_iallgather(c, in.data_ptr(), flat.data_ptr(), count_of(in), dtype_of(in, false),
                               r);
      },
      copy_out);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::_reduce_scatter_base(
    at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) {
  check_tensor(input, "reduce_scatter");
  check_tensor(output, "reduce_scatter");
  TORCH_CHECK(
      input.numel() == output.numel() * getSize() && output.scalar_type() == input.scalar_type(),
      "weft: reduce_scatter's input must hold world size x the output's elements, of "
      "its dtype");
  at::Tensor in = input, out = output;
  const weft_op_t op = op_of(opts.reduceOp);
  return start(c10d::OpType::_REDUCE_SCATTER_BASE, {out}, {in, out},
               [&](weft_comm_t c, weft_request_t* r) {
                 return weft_ireduce_scatter(c, in.data_ptr(), out.data_ptr(), count_of(out),
                                             dtype_of(in, true), op, r);
               });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::reduce_scatter(
    std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
    const c10d::ReduceScatterOptions& opts) {
  at::Tensor out = the_tensor(outputs, "reduce_scatter");
  TORCH_CHECK(inputs.size() == 1 && inputs[0].size() == static_cast<size_t>(getSize()),
              "weft: reduce_scatter takes one list of world size tensors per process");
  std::vector<at::Tensor> flat_inputs;
  for (const at::Tensor& t : inputs[0]) flat_inputs.push_back(t.reshape({-1}));
  at::Tensor in = at::cat(flat_inputs);
  return _reduce_scatter_base(out, in, opts);
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::alltoall_base(
    at::Tensor& output, at::Tensor& input, std::vector<int64_t>& output_split_sizes,
    std::vector<int64_t>& input_split_sizes, const c10d::AllToAllOptions&) {
  TORCH_CHECK(output_split_sizes.empty() && input_split_sizes.empty(),
              "weft: alltoall takes equal blocks only (no split sizes)");
  check_tensor(input, "alltoall");
  check_tensor(output, "alltoall");
  TORCH_CHECK(input.numel() == output.numel() && input.numel() % getSize() == 0 &&
                  input.scalar_type() == output.scalar_type(),
              "weft: alltoall's input and output must match, in world size equal blocks");
  at::Tensor in = input, out = output;
  return start(c10d::OpType::ALLTOALL_BASE, {out}, {in, out},
               [&](weft_comm_t c, weft_request_t* r) {
                 return weft_ialltoall(c, in.data_ptr(), out.data_ptr(), count_of(in) / getSize(),
                                       dtype_of(in, false), r);
               });
}

// Tags are not matched: weft pairs the k-th send to a peer with that peer's k-th receive.
c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::send(std::vector<at::Tensor>& tensors,
                                                      int dst_rank, int) {
  at::Tensor t = the_tensor(tensors, "send");
  return start(c10d::OpType::SEND, {t}, {t}, [&](weft_comm_t c, weft_request_t* r) {
    return weft_isend(c, t.data_ptr(), count_of(t), dtype_of(t, false), dst_rank, r);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::recv(std::vector<at::Tensor>& tensors,
                                                      int src_rank, int) {
  at::Tensor t = the_tensor(tensors, "recv");
  return start(c10d::OpType::RECV, {t}, {t}, [&](weft_comm_t c, weft_request_t* r) {
    return weft_irecv(c, t.data_ptr(), count_of(t), dtype_of(t, false), src_rank, r);
  });
}

c10::intrusive_ptr<c10d::Work> ProcessGroupWeft::barrier(const c10d::BarrierOptions&) {
  return start(c10d::OpType::BARRIER, {}, {},
               [](weft_comm_t c, weft_request_t* r) { return weft_ibarrier(c, r); });
}

}  // namespace weft::python
