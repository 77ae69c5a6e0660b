#include "parallel/bucket_plan.h"

#include <algorithm>

#include "runtime/error.h"

namespace weft::parallel {

BucketPlan plan_buckets(const std::vector<size_t>& param_counts, size_t bucket_elements,
                        size_t align) {
  if (align == 0 || bucket_elements == 0)
    throw Error(ErrorCode::InvalidArgument, "bucket size and alignment must be positive");
  BucketPlan plan;
  std::vector<size_t> starts;
  size_t total = 0;
  for (size_t c : param_counts) {
    starts.push_back(total);
    total += c;
  }
  plan.padded_elements = (total + align - 1) / align * align;
  size_t bucket = (bucket_elements + align - 1) / align * align;
  plan.buckets_of_param.resize(param_counts.size());
  // Cut from the end; the first bucket of the buffer takes what is left (still a multiple of
  // align, since both the padded length and the bucket size are).
  for (size_t end = plan.padded_elements; end > 0;) {
    size_t begin = end >= bucket ? end - bucket : 0;
    Bucket b{begin, end - begin, {}};
    int index = static_cast<int>(plan.buckets.size());
    for (size_t p = 0; p < param_counts.size(); p++) {
      size_t s = starts[p], e = starts[p] + param_counts[p];
      if (param_counts[p] > 0 && s < end && e > begin) {
        b.params.push_back(static_cast<int>(p));
        plan.buckets_of_param[p].push_back(index);
      }
    }
    plan.buckets.push_back(std::move(b));
    end = begin;
  }
  return plan;
}

}  // namespace weft::parallel
