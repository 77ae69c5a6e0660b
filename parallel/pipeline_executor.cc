#include "parallel/pipeline_executor.h"

#include <algorithm>
#include <string>

#include "runtime/clock.h"
#include "runtime/error.h"
#include "runtime/thread_clock.h"

namespace weft::parallel {

void PipelineStage::backward_input(int, int, const void*) {
  throw Error(ErrorCode::InvalidArgument, "this pipeline stage runs whole backwards only");
}
void PipelineStage::backward_weight(int, int) {
  throw Error(ErrorCode::InvalidArgument, "this pipeline stage runs whole backwards only");
}

PipelineExecutor::PipelineExecutor(comm::Communicator& pp, std::vector<Action> actions,
                                   PipelineShape shape)
    : pp_(pp), actions_(std::move(actions)), shape_(shape), rank_(pp.rank()) {
  if (pp.size() != shape.stages)
    throw Error(ErrorCode::InvalidArgument,
                "the pipeline communicator has " + std::to_string(pp.size()) +
                    " ranks but the schedule has " + std::to_string(shape.stages) + " stages");
  buffers_.assign(static_cast<size_t>(kBoundaries) * shape.virtual_stages * shape.micro_batches,
                  nullptr);
}

void* PipelineExecutor::buffer(PipelineStage& stage, Boundary kind, int chunk, int micro_batch) {
  void*& b = buffers_[(static_cast<size_t>(kind) * shape_.virtual_stages + chunk) *
                          shape_.micro_batches +
                      micro_batch];
  if (b == nullptr) b = stage.boundary_buffer();
  return b;
}

Tensor PipelineExecutor::tensor(void* data) const {
  return Tensor::flat(data, shape_.dtype, shape_.boundary_elements, shape_.device);
}

ActionCosts PipelineTimes::costs(bool cpu) const {
  auto mean = [&](ActionKind kind) {
    const size_t k = static_cast<size_t>(kind);
    return computes[k] > 0 ? (cpu ? compute_cpu[k] : compute_wall[k]) / computes[k] : 0.0;
  };
  ActionCosts c;
  c.forward = mean(ActionKind::forward);
  c.backward = mean(ActionKind::backward);
  c.backward_input = mean(ActionKind::backward_input);
  c.backward_weight = mean(ActionKind::backward_weight);
  c.transfer = std::max(0.0, shortest_copy);
  return c;
}

PipelineTimes PipelineExecutor::run(PipelineStage& stage) {
  PipelineTimes times;
  const RunQueueClock run_queue;  // on this thread, the one that waits in the exchanges
  const Clock::time_point start = Clock::now();
  std::vector<comm::P2P> batch;
  std::string batch_name;  // its actions' kinds, for the timeline
  const Action* batch_first = nullptr;
  auto exchange = [&] {
    const Clock::time_point t = Clock::now();
    const double queued = run_queue.seconds();
    stage.synchronize();
    pp_.batch_p2p(batch).wait();
    // The wall time before the run queue's: a preemption as the read returns lands after this
    // exchange, in what counts as compute, rather than in the exchange but not its run queue.
    const double took = seconds_since(t);
    times.exchange_seconds += took;
    if (queued >= 0) times.descheduled_seconds += std::max(0.0, run_queue.seconds() - queued);
    const double per_message = took / static_cast<double>(batch.size());
    if (times.shortest_copy < 0 || per_message < times.shortest_copy)
      times.shortest_copy = per_message;
    if (trace_)
      trace_->record(TraceRow::compute, batch_name, t, Clock::now(),
                     {{"micro_batch", batch_first->micro_batch}, {"peer", batch_first->peer}});
    batch.clear();
    batch_name.clear();
    batch_first = nullptr;
  };
  for (const Action& a : actions_) {
    const int c = a.chunk, mb = a.micro_batch;
    if (is_compute(a.kind)) {
      const Clock::time_point t = Clock::now();
      const double cpu = thread_cpu_seconds();
      const int cpu_at_start = current_cpu();
      if (a.kind == ActionKind::forward) {
        // The input: none on the first global stage, the previous chunk's output when that
        // stage is on this rank too (one pipeline rank), else what was received.
        const void* x = first_global(c)         ? nullptr
                        : shape_.stages == 1    ? stage.output(c - 1, mb)
                                                : buffer(stage, kInput, c, mb);
        stage.forward(c, mb, x);
      } else if (a.kind == ActionKind::backward_weight) {
        stage.backward_weight(c, mb);
      } else {
        const void* dy = last_global(c) ? nullptr : buffer(stage, kOutputGrad, c, mb);
        if (a.kind == ActionKind::backward)
          stage.backward(c, mb, dy);
        else
          stage.backward_input(c, mb, dy);
        // Keep the input gradient until it is sent (or handed to the previous chunk here).
        if (!first_global(c)) {
          void* keep = shape_.stages == 1 ? buffer(stage, kOutputGrad, c - 1, mb)
                                          : buffer(stage, kInputGrad, c, mb);
          stage.copy_boundary(keep, stage.input_grad(c));
        }
      }
      // The CPU clock before the wall clock: the kernel may preempt the thread as that system
      // call returns, and the wait belongs inside the compute it ends.
      const double cpu_took = thread_cpu_seconds() - cpu;
      const double took = seconds_since(t);
      const size_t k = static_cast<size_t>(a.kind);
      times.computes[k]++;
      times.compute_wall[k] += took;
      times.compute_cpu[k] += cpu_took;
      times.durations.push_back(took);
      const int on = current_cpu();
      times.cpus.push_back(on == cpu_at_start ? on : -1);
      if (trace_)
        trace_->record(
            TraceRow::compute, action_kind_name(a.kind), t, Clock::now(),
            {{"micro_batch", mb}, {"chunk", c}, {"cpu_us", static_cast<int64_t>(cpu_took * 1e6)}});
      continue;
    }
    if (trace_) {
      batch_name += (batch_name.empty() ? "" : " + ") + std::string(action_kind_name(a.kind));
      if (!batch_first) batch_first = &a;
    }
    switch (a.kind) {
      case ActionKind::send_activation:
        batch.push_back({comm::P2P::send, tensor(const_cast<void*>(stage.output(c, mb))), a.peer});
        break;
      case ActionKind::recv_activation:
        batch.push_back({comm::P2P::recv, tensor(buffer(stage, kInput, c, mb)), a.peer});
        break;
      case ActionKind::send_gradient:
        batch.push_back({comm::P2P::send, tensor(buffer(stage, kInputGrad, c, mb)), a.peer});
        break;
      case ActionKind::recv_gradient:
        batch.push_back({comm::P2P::recv, tensor(buffer(stage, kOutputGrad, c, mb)), a.peer});
        break;
      default:
        break;
    }
    if (!a.batched_with_next) exchange();
  }
  if (!batch.empty()) exchange();
  times.seconds = seconds_since(start);
  return times;
}

}  // namespace weft::parallel
