#pragma once
// The table of argument mismatches between two ranks: every collective x every argument that
// must agree (count, dtype, reduce op, root), send/recv pairs that disagree on count or dtype,
// and receives that wait on a peer that never sends (it receives too, or runs a collective),
// each run at a small and a large size. Every rank
// of every backend must fail each case with InvalidArgument naming both ranks' values within
// kMismatchPatience. Shared by the fork tests (tcp, shm) and the mpirun tests (mpi-ring, mpi).
#include <chrono>
#include <string>

#include "comm/communicator.h"

namespace weft::testing {

inline constexpr std::chrono::seconds kMismatchPatience{2};

// Runs every case with `elements` f32 elements as the base count (2: 8 bytes; 4 Mi: 16 MiB),
// each on a fresh communicator split from `world` (a failed op leaves its communicator
// aborted), which must have exactly two ranks. Prints a "MISMATCH ..." line per broken
// expectation on stderr and returns how many there were.
int run_mismatch_cases(comm::Communicator& world, size_t elements);

// Receives that wait on each other, on a world of exactly three ranks: rank 0 sends 8 bytes to
// rank 1 and goes on to a barrier, rank 1 receives from rank 2 and rank 2 from rank 1. Every
// rank must fail with InvalidArgument naming both receives within kMismatchPatience (ranks 1
// and 2 from their stall notices, rank 0 from their abort). Prints a "MISMATCH ..." line per
// broken expectation on stderr and returns how many there were.
int run_crossed_receives(comm::Communicator& world);

}  // namespace weft::testing
