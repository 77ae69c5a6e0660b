#pragma once
// The torch.distributed backend "weft": a c10d ProcessGroup (PyTorch 1.13's interface) whose
// collectives are weft's, through the C API. DistributedDataParallel needs broadcast (the
// initial parameters), allgather (their shapes) and allreduce (the gradient buckets, through
// the Work's future); the others are here for programs that call torch.distributed directly.
//
// Each op starts at once (weft runs a communicator's ops in call order on its own thread) and
// returns a Work; one completion thread per group waits for the ops in that order, runs what
// an op has left to do (copying an allgather's flat result into the output list), and
// completes the Work and its future, or fails them with weft's message. CPU tensors,
// contiguous, of the dtypes weft has (bool moves as uint8 where nothing is reduced).
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <vector>

#include "include/weft/weft.h"

namespace weft::python {

class ProcessGroupWeft : public c10d::ProcessGroup {
 public:
  // Takes over `comm` (a communicator of `size` ranks in which this one is `rank`).
  ProcessGroupWeft(weft_comm_t comm, int rank, int size);
  ~ProcessGroupWeft() override;  // close()

  // Waits for the ops started so far, then frees the communicator; later ops fail. Called at
  // the interpreter's exit (weft/torch.py), so that peers see this rank leave, not die.
  void close();

  const std::string getBackendName() const override { return "weft"; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor>& tensors,
                                        const c10d::ReduceOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                                std::vector<std::vector<at::Tensor>>& inputs,
                                                const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(
      at::Tensor& output, at::Tensor& input, const c10d::ReduceScatterOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                               std::vector<int64_t>& output_split_sizes,
                                               std::vector<int64_t>& input_split_sizes,
                                               const c10d::AllToAllOptions& opts) override;
  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dst_rank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int src_rank,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts) override;

 private:
  class WeftWork;
  struct Pending {
    weft_request_t request;
    c10::intrusive_ptr<WeftWork> work;
    std::vector<at::Tensor> keep;  // alive until the op is done
    std::function<void()> then;    // run once it succeeded, before the Work completes
  };
  using StartFn = std::function<int(weft_comm_t, weft_request_t*)>;

  // Starts an op whose Work's result is `outputs`, keeping `keep` alive until it is done.
  c10::intrusive_ptr<c10d::Work> start(c10d::OpType type, std::vector<at::Tensor> outputs,
                                       std::vector<at::Tensor> keep, const StartFn& start_op,
                                       std::function<void()> then = {});
  void complete_in_order();

  weft_comm_t comm_;
  std::mutex mutex_;  // guards comm_ (ops start in the order they are queued), the queue, closing_
  std::condition_variable queued_;
  std::deque<Pending> pending_;
  bool closing_ = false;
  std::thread completer_;
};

}  // namespace weft::python
