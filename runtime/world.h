#pragma once
// World: who this rank is, learned from whatever launched it (DESIGN.md, "Rank discovery").
#include <functional>
#include <optional>
#include <string>

namespace weft {

struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int local_size = 1;
  int node_rank = 0;
  std::string job_id = "local";
  std::string launcher = "none";  // weftrun, torchrun, openmpi, pmi, pmix, slurm, none
  // Where rank 0 serves the rendezvous (any launcher but weftrun): MASTER_ADDR:MASTER_PORT when
  // given; in an srun step, else the step's first node and a port of the job and step ids
  // (runtime/slurm_step.h).
  std::string master_addr;
  int master_port = 0;
  bool master_from_slurm = false;  // master_addr is the step's first host (for messages)

  // Reads the process environment; first launcher whose variables are present wins.
  static World from_env();
  // Same, over any lookup (unit tests pass a map). Throws Error(InvalidArgument) naming the
  // variables when they are malformed or inconsistent.
  using Lookup = std::function<std::optional<std::string>(const std::string&)>;
  static World from_vars(const Lookup& get);

  std::string describe() const;  // "rank 3/8 (local 1/2, node 1) via weftrun, job j42"
};

}  // namespace weft
