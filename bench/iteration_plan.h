#pragma once
// How many times to run an op so that one size takes about `target_seconds`.
//
// Every rank must run the same number of collectives, so each decision below is taken on a
// value all ranks agree on (the slowest rank's time, via `max_over_ranks`), never on a rank's
// own clock alone.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "runtime/clock.h"

namespace weft::bench {

struct IterationPolicy {
  double target_seconds = 0.3;  // timed part of one size
  size_t min_iters = 3;
  size_t max_iters = 1'000'000;
  double warmup_seconds = 0.02;  // warm-up rounds stop once one round lasts this long
  size_t min_warmup_ops = 2;
};

// Iterations for a measured cost per op.
inline size_t iterations_for(double seconds_per_op, const IterationPolicy& p) {
  if (seconds_per_op <= 0) return p.max_iters;
  double n = std::ceil(p.target_seconds / seconds_per_op);
  return static_cast<size_t>(
      std::clamp(n, static_cast<double>(p.min_iters), static_cast<double>(p.max_iters)));
}

// Warms up and estimates the cost of one op: rounds of 2, 4, 8, ... back-to-back ops until a
// round lasts warmup_seconds on the slowest rank, then one more round of that length, whose
// seconds per op are returned. The extra round matters: the first rounds still pay for lazily
// built state (connections, page faults in a library's scratch buffers) and would make the
// timed phase far shorter than the target.
//   run_ops(k)         runs k ops, each waited for
//   max_over_ranks(x)  the largest x of all ranks (a collective: every rank calls it)
template <typename RunOps, typename MaxOverRanks>
double warm_up_and_estimate(RunOps&& run_ops, MaxOverRanks&& max_over_ranks,
                            const IterationPolicy& p) {
  auto timed_round = [&](size_t ops) {
    Clock::time_point start = Clock::now();
    run_ops(ops);
    return max_over_ranks(seconds_since(start));
  };
  size_t ops = std::max<size_t>(p.min_warmup_ops, 1);
  while (timed_round(ops) < p.warmup_seconds && ops < p.max_iters) ops *= 2;
  return timed_round(ops) / static_cast<double>(ops);
}

struct Timing {
  double seconds_per_op = 0;  // the slowest rank's mean over the timed ops
  size_t iters = 0;
};

// Times one size the same way in every contender (weft, MPI, Gloo), so their figures compare:
// warm up (adaptively when fixed_iters is 0, else p.min_warmup_ops), line the ranks up with
// barrier(), time the ops, and take the slowest rank's mean.
//   run_ops, max_over_ranks  as for warm_up_and_estimate()
//   barrier()                 a collective that returns once every rank called it
template <typename RunOps, typename MaxOverRanks, typename Barrier>
Timing time_ops(size_t fixed_iters, RunOps&& run_ops, MaxOverRanks&& max_over_ranks,
                Barrier&& barrier, const IterationPolicy& p = {}) {
  Timing t;
  t.iters = fixed_iters;
  if (t.iters == 0)
    t.iters = iterations_for(warm_up_and_estimate(run_ops, max_over_ranks, p), p);
  else
    run_ops(p.min_warmup_ops);
  barrier();
  Clock::time_point start = Clock::now();
  run_ops(t.iters);
  t.seconds_per_op = max_over_ranks(seconds_since(start) / static_cast<double>(t.iters));
  return t;
}

}  // namespace weft::bench
