#pragma once
// Point-to-point ops that wait long but are no deadlock: each must complete with the right data
// on every backend, whatever stall notices (comm/stall_notice.h) they send. Shared by the fork
// tests (tcp, shm), the inproc unit tests and the mpirun tests (mpi, mpi-ring).
#include "comm/communicator.h"

namespace weft::testing {

// Rank 1 sends 0.5 s late, twice: rank 0's receive sends a stall notice that rank 1 reads only
// after it sent what rank 0 waited for, so it must drop it, and the messages and the allreduce
// of the whole world after it must not be disturbed. Ranks past 1 join only the allreduce.
// Prints an "UNEXPECTED ..." line per broken expectation on stderr; returns how many.
int run_late_sender(comm::Communicator& world);

// A notice that cannot be sent before the op's data arrives, on a world of exactly three ranks:
// rank 0 sends 16 small messages to rank 1 (shm: a full mailbox that rank 1 reads only at the
// end), then waits in a receive from rank 1, which sends 0.5 s late; only then does rank 0 send
// to rank 2, which sends to rank 1, which then reads rank 0's messages. Rank 0's stall notice
// to rank 1 has no room until rank 1 reads: it must be given up once rank 0's receive is done,
// or the three ranks wait on each other. Prints "UNEXPECTED ..." lines; returns how many.
int run_notice_behind_full_mailbox(comm::Communicator& world);

}  // namespace weft::testing
