#pragma once
// StdinRelay: copies weftrun's stdin to rank 0 through a pipe, for when stdin is a terminal.
// Ranks run in process groups of their own (rank_process.h), that is, as background jobs of the
// terminal: one reading it itself would be stopped by SIGTTIN. weftrun, in the foreground, reads
// for it. (Any other stdin, a file or a pipe, is handed to rank 0 as it is.)
#include <poll.h>

#include <string>

#include "runtime/unique_fd.h"

namespace weft::launcher {

class StdinRelay {
 public:
  StdinRelay() = default;  // relays nothing
  // `to` is the write end of rank 0's stdin pipe; it is made non-blocking.
  StdinRelay(int from, UniqueFd to);

  // What to poll now: `from` for reading while nothing waits to be written and weftrun is in
  // the terminal's foreground, `to` for writing while something waits; fd -1 otherwise, and
  // for good once the relay is over (end of input, or rank 0 stopped reading), when rank 0
  // sees the end of its stdin.
  pollfd poll_entry() const;
  // Moves what poll() reported ready. Never blocks, never throws.
  void on_ready();

 private:
  void finish();  // closes `to`: rank 0 reads the end of its input

  int from_ = -1;
  UniqueFd to_;
  std::string pending_;  // read from `from`, not yet written to `to`
  size_t written_ = 0;   // of pending_
};

}  // namespace weft::launcher
