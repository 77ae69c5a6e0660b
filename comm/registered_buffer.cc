#include "comm/registered_buffer.h"

#include <utility>

#include "runtime/log.h"

namespace weft::comm {

RegisteredBuffer::RegisteredBuffer(std::shared_ptr<RegisteredSegment> segment)
    : segment_(std::move(segment)) {}

RegisteredBuffer::RegisteredBuffer(Buffer plain) : plain_(std::move(plain)) {}

RegisteredBuffer::~RegisteredBuffer() { release(); }

RegisteredBuffer& RegisteredBuffer::operator=(RegisteredBuffer&& o) noexcept {
  if (this != &o) {
    release();
    segment_ = std::move(o.segment_);
    plain_ = std::move(o.plain_);
  }
  return *this;
}

void RegisteredBuffer::release() {
  // Ops hold a reference to the segments they work on (see Communicator::allreduce).
  if (segment_ && segment_.use_count() > 1)
    WEFT_ERROR("a registered buffer of " << segment_->bytes()
                                         << " bytes was dropped while an op still uses it; its "
                                            "memory stays mapped until that op ends. Wait for "
                                            "the op's Work before dropping its buffer.");
  segment_.reset();
}

Tensor RegisteredBuffer::view(DType dtype, size_t count) const {
  return Tensor::within(data(), size(), dtype, count, Device::cpu(), "registered buffer");
}

}  // namespace weft::comm
