#pragma once
// In-process transport: ranks are threads of one process. Used by unit tests to run every
// algorithm over many sizes quickly, and by programs that embed several ranks in one process.
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/transport_setup.h"
#include "comm/wire.h"

namespace weft::comm {

class InprocHub {
 public:
  explicit InprocHub(int size);
  int size() const { return size_; }
  // The hub of a sub-group (split), created on first use; all members get the same one.
  std::shared_ptr<InprocHub> group(const std::string& tag, int size);

 private:
  friend class InprocTransport;
  struct Message {
    FrameHeader header;
    std::vector<char> payload;
  };
  int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<Message>> queues_;  // [src * size + dst]
  std::vector<bool> closed_;                 // a rank's transport is gone
  uint64_t generation_ = 0;  // bumped on every change a waiting rank may care about
  int aborted_by_ = -1;
  std::string abort_reason_;
  ErrorCode abort_code_ = ErrorCode::Aborted;
  std::map<std::string, std::shared_ptr<InprocHub>> groups_;
};

// In-process: ranks are threads of one process sharing `hub` (tests, embedding).
std::unique_ptr<Transport> make_inproc_transport(std::shared_ptr<InprocHub> hub, int rank);

}  // namespace weft::comm
