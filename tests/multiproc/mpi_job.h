#pragma once
// Runs one mpirun job of the test rank program (mpi_rank_main) and collects what it printed.
// A hard timeout ends the job (SIGTERM to mpirun's process group, then SIGKILL); afterwards any
// process of the job still alive is found by a marker on its command line, killed and
// reported, so a test never leaves processes behind.
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace weft::testing {

struct MpiJobOptions {
  int ranks = 2;
  std::vector<std::string> args;            // for the rank program
  std::map<std::string, std::string> env;   // extra environment for mpirun and the ranks
  std::chrono::seconds timeout{60};
};

struct MpiJobResult {
  int exit_code = -1;  // mpirun's; -1 when it was killed by a signal
  int signal = 0;
  bool timed_out = false;
  double seconds = 0;
  std::string output;                  // stdout and stderr of mpirun and every rank
  std::vector<std::string> leftovers;  // processes of the job still alive after mpirun ended
  std::string summary() const;
};

// The environment every MPI test job gets: what mpirun needs as root in a container.
std::map<std::string, std::string> mpi_test_env();

MpiJobResult run_mpi_job(const MpiJobOptions& options);

// Runs the rank program without mpirun (a plain process), the same way otherwise.
MpiJobResult run_without_mpirun(const MpiJobOptions& options);

}  // namespace weft::testing
