#include "runtime/world.h"

#include <cstdlib>
#include <string>

#include "runtime/error.h"
#include "runtime/slurm_step.h"

namespace weft {
namespace {

// One launcher's names for the World fields; an empty name means "not provided".
struct Names {
  const char* launcher;
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;
  const char* node_rank;
};

int parse_int(const World::Lookup& get, const char* name, const char* launcher) {
  std::string v = *get(name);
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 0 || n > 1'000'000)
    throw Error(ErrorCode::InvalidArgument, std::string(launcher) + " variable " + name + "='" +
                                                v + "' is not a non-negative integer");
  return static_cast<int>(n);
}

int optional_int(const World::Lookup& get, const char* name, const char* launcher, int fallback) {
  if (!name || !get(name)) return fallback;
  return parse_int(get, name, launcher);
}

World read(const World::Lookup& get, const Names& n) {
  if (!get(n.size))
    throw Error(ErrorCode::InvalidArgument, std::string(n.launcher) + ": " + n.rank +
                                                " is set but " + n.size +
                                                " is not; set both or neither");
  World w;
  w.launcher = n.launcher;
  w.rank = parse_int(get, n.rank, n.launcher);
  w.size = parse_int(get, n.size, n.launcher);
  bool has_local_rank = n.local_rank && get(n.local_rank);
  w.local_rank = optional_int(get, n.local_rank, n.launcher, has_local_rank ? 0 : w.rank);
  w.local_size = optional_int(get, n.local_size, n.launcher, w.size);
  w.node_rank = optional_int(get, n.node_rank, n.launcher, 0);
  if (w.size < 1)
    throw Error(ErrorCode::InvalidArgument, std::string(n.launcher) + ": " + n.size + "=" +
                                                std::to_string(w.size) + " must be at least 1");
  if (w.rank >= w.size)
    throw Error(ErrorCode::InvalidArgument,
                std::string(n.launcher) + ": " + n.rank + "=" + std::to_string(w.rank) +
                    " is not below " + n.size + "=" + std::to_string(w.size) +
                    "; ranks are numbered 0.." + std::to_string(w.size - 1));
  if (w.local_size < 1 || w.local_rank >= w.local_size || w.local_size > w.size)
    throw Error(ErrorCode::InvalidArgument,
                std::string(n.launcher) + ": local rank " +
                    (n.local_rank ? n.local_rank : "?") + "=" + std::to_string(w.local_rank) +
                    " with local size " + (n.local_size ? n.local_size : "?") + "=" +
                    std::to_string(w.local_size) + " and world size " + std::to_string(w.size) +
                    " are inconsistent");
  return w;
}

// An srun step: the tasks on this node, and where rank 0 serves the rendezvous (the first node
// of the step, on a port of the job and step ids) unless MASTER_ADDR and MASTER_PORT say.
void read_slurm_step(const World::Lookup& get, World& w) {
  // Slurm has no "tasks on this node" variable of one name: the step's per-node counts ("2(x3)")
  // indexed by this node's place in the step.
  const char* per_node_name =
      get("SLURM_STEP_TASKS_PER_NODE") ? "SLURM_STEP_TASKS_PER_NODE" : "SLURM_TASKS_PER_NODE";
  if (auto per_node = get(per_node_name)) {
    int n = slurm::tasks_on_node(*per_node, w.node_rank, per_node_name);
    if (n > w.local_rank && n <= w.size) w.local_size = n;
  }
  if (auto job = get("SLURM_JOB_ID")) w.job_id = *job;
  auto nodes = get("SLURM_STEP_NODELIST");
  if (!nodes) return;
  if (w.master_addr.empty()) {
    w.master_addr = slurm::expand_nodelist(*nodes, "SLURM_STEP_NODELIST").front();
    w.master_from_slurm = true;
  }
  if (w.master_port == 0)
    w.master_port = slurm::step_port(get("SLURM_JOB_ID").value_or(""),
                                     get("SLURM_STEP_ID").value_or(""));
}

}  // namespace

World World::from_vars(const Lookup& get) {
  World w;
  if (get("WEFT_RANK") || get("WEFT_WORLD_SIZE")) {
    if (!get("WEFT_RANK"))
      throw Error(ErrorCode::InvalidArgument,
                  "weftrun: WEFT_WORLD_SIZE is set but WEFT_RANK is not; set both or neither");
    w = read(get, {"weftrun", "WEFT_RANK", "WEFT_WORLD_SIZE", "WEFT_LOCAL_RANK",
                   "WEFT_LOCAL_WORLD_SIZE", "WEFT_NODE_RANK"});
    if (auto job = get("WEFT_JOB_ID")) w.job_id = *job;
  } else if (get("RANK") && get("WORLD_SIZE")) {
    w = read(get, {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                   "GROUP_RANK"});
    if (auto job = get("TORCHELASTIC_RUN_ID")) w.job_id = *job;
  } else if (get("OMPI_COMM_WORLD_RANK")) {
    // Open MPI names no node index (OMPI_COMM_WORLD_NODE_RANK is a rank within the node), so
    // the node stays 0 and ranks tell their nodes apart by host (comm/node_layout.h).
    w = read(get, {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                   "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", nullptr});
  } else if (get("PMI_RANK")) {
    w = read(get, {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", nullptr});
  } else if (get("PMIX_RANK") && get("SLURM_NTASKS")) {
    w = read(get, {"pmix", "PMIX_RANK", "SLURM_NTASKS", "SLURM_LOCALID", nullptr, "SLURM_NODEID"});
  } else if (get("SLURM_STEP_ID") && get("SLURM_PROCID")) {
    w = read(get, {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr,
                   "SLURM_NODEID"});
  }
  // Where rank 0 serves the rendezvous store, under any launcher but weftrun (which names its own
  // store): torchrun sets these, and under srun, mpirun or PMI the user may (the error for a
  // job without a store says to).
  if (w.launcher != "weftrun") {
    if (auto a = get("MASTER_ADDR")) w.master_addr = *a;
    if (get("MASTER_PORT")) w.master_port = parse_int(get, "MASTER_PORT", w.launcher.c_str());
  }
  if (w.launcher == "slurm" || w.launcher == "pmix") read_slurm_step(get, w);
  return w;
}

World World::from_env() {
  return from_vars([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

std::string World::describe() const {
  return "rank " + std::to_string(rank) + "/" + std::to_string(size) + " (local " +
         std::to_string(local_rank) + "/" + std::to_string(local_size) + ", node " +
         std::to_string(node_rank) + ") via " + launcher + ", job " + job_id;
}

}  // namespace weft
