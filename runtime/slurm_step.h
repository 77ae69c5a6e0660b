#pragma once
// What weft reads from an srun step's variables beyond rank and size (runtime/world.h), so that
// `srun ... prog` alone is enough for the ranks to meet: Slurm's compact host lists, the tasks on
// each node, and the port a step's ranks meet on. Pure functions of their text, unit-tested.
#include <string>
#include <string_view>
#include <vector>

namespace weft::slurm {

// Expands a Slurm host list as SLURM_STEP_NODELIST and SLURM_JOB_NODELIST write it:
// "node[01-04,07],gpu3" -> node01 node02 node03 node04 node07 gpu3. Ranges keep the zero padding
// of their first number; several bracket groups in one name multiply out
// ("r[1-2]n[1-2]" -> r1n1 r1n2 r2n1 r2n2). InvalidArgument naming `variable` when malformed.
std::vector<std::string> expand_nodelist(std::string_view list, const char* variable);

// The tasks on node `node` (0-based) from SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE,
// "2(x3),1" = 2 on each of the first three nodes, then 1. InvalidArgument naming `variable`
// when malformed or when it lists fewer nodes.
int tasks_on_node(std::string_view tasks_per_node, int node, const char* variable);

// The port a step's rank 0 serves on when MASTER_PORT is not set: a function of the job and step
// ids, so that every rank of the step computes the same and the steps running at once on a node
// (other jobs', or this job's) pick different ones. In 15000..30999, below Linux's ephemeral
// ports (weft's coordinator takes the port after it); non-numeric ids count as 0.
int step_port(std::string_view job_id, std::string_view step_id);

}  // namespace weft::slurm
