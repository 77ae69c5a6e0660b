#pragma once
// Gradient buckets: a pure function of the parameter layout. Gradients live in one flat buffer
// (parameters back to back in forward order); buckets are fixed-size ranges cut from the END
// of that buffer, because backward produces the last layer's gradients first. A bucket is ready
// to reduce once every parameter overlapping it has its gradient; a large parameter may span
// several buckets. Every bucket's length is a multiple of `align` (the data-parallel size, so
// ZeRO-1 can reduce-scatter it into equal shards): the buffer is padded to make that so.
#include <cstddef>
#include <vector>

namespace weft::parallel {

struct Bucket {
  size_t offset = 0;         // first element in the flat buffer
  size_t count = 0;          // elements, a multiple of align
  std::vector<int> params;   // parameters overlapping it (indices in forward order)
};

struct BucketPlan {
  size_t padded_elements = 0;  // flat buffer length to allocate (>= sum of params)
  std::vector<Bucket> buckets; // in the order backward fills them (last layer first)
  // For each parameter, the buckets it overlaps.
  std::vector<std::vector<int>> buckets_of_param;
};

// param_counts: elements per parameter in forward order; bucket_elements: target bucket size
// (rounded up to a multiple of align); align >= 1.
BucketPlan plan_buckets(const std::vector<size_t>& param_counts, size_t bucket_elements,
                        size_t align);

}  // namespace weft::parallel
