#include "launcher/elastic_policy.h"

namespace weft::launcher {

ElasticPolicy::ElasticPolicy(int first_size, int min_ranks, int max_restarts)
    : first_size_(first_size), min_ranks_(min_ranks), max_restarts_(max_restarts) {}

std::variant<Restart, std::string> ElasticPolicy::after(const FailedGeneration& failed) {
  const std::string size = std::to_string(failed.size) + " ranks";
  if (failed.refused_size && failed.size == first_size_)
    return "the ranks refused the job's own flags at " + size +
           " (exit status 2, bad usage): a restart would fail the same way";
  if (restarts_ >= max_restarts_)
    return "--max-restarts " + std::to_string(max_restarts_) + " restarts used up";

  std::string why_smaller;
  if (failed.node_zero_ranks > 0 && failed.node_zero_ranks < failed.size) {
    why_smaller = "across nodes a restart goes on with node 0's ranks alone";
    previous_ = failed;
    if (failed.node_zero_ranks < min_ranks_)
      return why_smaller + ", " + std::to_string(failed.node_zero_ranks) +
             ", fewer than --min-ranks " + std::to_string(min_ranks_);
    ++restarts_;
    return Restart{failed.node_zero_ranks, why_smaller};
  }
  if (failed.refused_size) {
    why_smaller = "the ranks refused " + size +
                  " (exit status 2: the layout or the global "
                  "batch does not fit that many; see their message above)";
  } else if (previous_ && previous_->size == failed.size && failed.culprit >= 0 &&
             previous_->culprit == failed.culprit) {
    why_smaller = "rank " + std::to_string(failed.culprit) + " failed first in two generations " +
                  "in a row at " + size;
  }
  previous_ = failed;
  if (why_smaller.empty()) {
    ++restarts_;
    return Restart{failed.size, ""};
  }
  if (failed.size - 1 < min_ranks_)
    return why_smaller + ", and --min-ranks " + std::to_string(min_ranks_) +
           " forbids going smaller";
  ++restarts_;
  return Restart{failed.size - 1, why_smaller};
}

}  // namespace weft::launcher
