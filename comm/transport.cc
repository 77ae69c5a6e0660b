#include "comm/transport.h"

#include "comm/stall_notice.h"
#include "runtime/error.h"

namespace weft::comm {

void wait(Transport& t, Transport::Request r, Deadline deadline, int peer, const Fingerprint& fp,
          StallNotices* notices) {
  while (!t.test(r)) {
    Clock::time_point now = Clock::now();
    if (now >= deadline)
      throw Error(ErrorCode::Timeout,
                  "rank " + std::to_string(t.rank()) + " timed out waiting for rank " +
                      std::to_string(peer) + " in " + fp.describe() + " over " + t.name() +
                      ": that rank is stuck, slower, or calling a different collective; raise "
                      "WEFT_TIMEOUT if it is only slow");
    if (notices) notices->tick(t, now);
    t.wait_for_progress(notices ? notices->sleep_until(deadline) : deadline);
  }
}

}  // namespace weft::comm
