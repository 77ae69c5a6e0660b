#include "comm/transport.h"

#include "runtime/error.h"

namespace weft::comm {

void wait(Transport& t, Transport::Request r, Deadline deadline, int peer, const Fingerprint& fp) {
  while (!t.test(r)) {
    if (Clock::now() >= deadline)
      throw Error(ErrorCode::Timeout,
                  "rank " + std::to_string(t.rank()) + " timed out waiting for rank " +
                      std::to_string(peer) + " in " + fp.describe() + " over " + t.name() +
                      ": that rank is stuck, slower, or calling a different collective; raise "
                      "WEFT_TIMEOUT if it is only slow");
    t.wait_for_progress(deadline);
  }
}

}  // namespace weft::comm
