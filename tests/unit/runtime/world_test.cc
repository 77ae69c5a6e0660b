#include "runtime/world.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "runtime/error.h"
#include "runtime/slurm_step.h"

namespace weft {
namespace {

World from(const std::map<std::string, std::string>& vars) {
  return World::from_vars([&](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    from(vars);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(World, NoLauncherMeansOneRank) {
  World w = from({});
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.size, 1);
  EXPECT_EQ(w.launcher, "none");
}

TEST(World, WeftrunVariables) {
  World w = from({{"WEFT_RANK", "3"}, {"WEFT_WORLD_SIZE", "8"}, {"WEFT_LOCAL_RANK", "1"},
                  {"WEFT_LOCAL_WORLD_SIZE", "2"}, {"WEFT_NODE_RANK", "1"}, {"WEFT_JOB_ID", "j9"}});
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_EQ(w.node_rank, 1);
  EXPECT_EQ(w.job_id, "j9");
  EXPECT_EQ(w.launcher, "weftrun");
}

TEST(World, WeftrunWinsOverEverythingElse) {
  World w = from({{"WEFT_RANK", "1"}, {"WEFT_WORLD_SIZE", "2"}, {"RANK", "5"}, {"WORLD_SIZE", "6"},
                  {"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4"}});
  EXPECT_EQ(w.launcher, "weftrun");
  EXPECT_EQ(w.rank, 1);
}

TEST(World, TorchrunVariables) {
  World w = from({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                  {"LOCAL_WORLD_SIZE", "4"}, {"GROUP_RANK", "1"}, {"MASTER_ADDR", "10.0.0.1"},
                  {"MASTER_PORT", "29500"}});
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.local_size, 4);
  EXPECT_EQ(w.node_rank, 1);
  EXPECT_EQ(w.master_addr, "10.0.0.1");
  EXPECT_EQ(w.master_port, 29500);
}

TEST(World, OpenMpiIgnoresUniverseSize) {
  World w = from({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                  {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                  {"OMPI_UNIVERSE_SIZE", "64"}});
  EXPECT_EQ(w.launcher, "openmpi");
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.local_size, 2);
}

// OMPI_COMM_WORLD_NODE_RANK is the rank within its node, not the node's index: read as the
// node, it gave the two ranks of one host different nodes (and hierarchical collectives took
// every rank for a node of its own). The host tells nodes apart instead.
TEST(World, OpenMpiNodeRankIsNotTheNode) {
  World w = from({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                  {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                  {"OMPI_COMM_WORLD_NODE_RANK", "1"}});
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.node_rank, 0);
}

TEST(World, OpenMpiBeatsSlurmInsideSbatch) {
  // mpirun inside an sbatch script: every rank inherits SLURM_PROCID=0.
  World w = from({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                  {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_STEP_ID", "0"}});
  EXPECT_EQ(w.launcher, "openmpi");
  EXPECT_EQ(w.rank, 3);
}

TEST(World, PmiVariables) {
  World w = from({{"PMI_RANK", "1"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "1"},
                  {"MPI_LOCALNRANKS", "3"}});
  EXPECT_EQ(w.launcher, "pmi");
  EXPECT_EQ(w.rank, 1);
  EXPECT_EQ(w.local_size, 3);
}

TEST(World, PmixUnderSrun) {
  World w = from({{"PMIX_RANK", "2"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "0"},
                  {"SLURM_NODEID", "1"}, {"SLURM_TASKS_PER_NODE", "2(x2)"}, {"SLURM_JOB_ID", "77"}});
  EXPECT_EQ(w.launcher, "pmix");
  EXPECT_EQ(w.rank, 2);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.node_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_EQ(w.job_id, "77");
}

TEST(World, SlurmOnlyInsideAStep) {
  EXPECT_EQ(from({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}}).launcher, "none");
  World w = from({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"},
                  {"SLURM_LOCALID", "1"}, {"SLURM_NODEID", "0"}, {"SLURM_TASKS_PER_NODE", "2"}});
  EXPECT_EQ(w.launcher, "slurm");
  EXPECT_EQ(w.rank, 1);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
}

// `srun` alone is enough: rank 0 serves on the step's first node, on a port of the job and step
// ids, unless MASTER_ADDR / MASTER_PORT say otherwise.
TEST(World, AnSrunStepFindsRankZerosHostAndPortFromSlurm) {
  std::map<std::string, std::string> step = {
      {"SLURM_PROCID", "5"},          {"SLURM_NTASKS", "7"},
      {"SLURM_STEP_ID", "3"},         {"SLURM_JOB_ID", "4242"},
      {"SLURM_LOCALID", "1"},         {"SLURM_NODEID", "2"},
      {"SLURM_STEP_NODELIST", "node[07-09,12]"},
      {"SLURM_TASKS_PER_NODE", "4(x2)"},  // the job's allocation: the step's counts win
      {"SLURM_STEP_TASKS_PER_NODE", "2(x2),3"}};
  World w = from(step);
  EXPECT_EQ(w.launcher, "slurm");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.node_rank, 2);
  EXPECT_EQ(w.local_size, 3);  // the third node of "2(x2),3"
  EXPECT_EQ(w.job_id, "4242");
  EXPECT_EQ(w.master_addr, "node07");
  EXPECT_TRUE(w.master_from_slurm);
  EXPECT_EQ(w.master_port, slurm::step_port("4242", "3"));
  EXPECT_EQ(w.master_port, 15000 + (4242 * 16 + 3) % 16000);

  step["MASTER_PORT"] = "29500";
  EXPECT_EQ(from(step).master_port, 29500);
  EXPECT_EQ(from(step).master_addr, "node07");
  step["MASTER_ADDR"] = "10.1.2.3";
  EXPECT_EQ(from(step).master_addr, "10.1.2.3");
  EXPECT_FALSE(from(step).master_from_slurm);

  step.erase("MASTER_ADDR");
  step["SLURM_STEP_NODELIST"] = "node[07-";
  EXPECT_NE(error_of(step).find("SLURM_STEP_NODELIST='node[07-' is not a Slurm host list"),
            std::string::npos);
}

// Under mpirun inside an sbatch script every rank sees the batch step's SLURM_PROCID=0 (and,
// when the script ran under srun, a step's variables): Open MPI's variables must win, with no
// Slurm host or port taken for the rendezvous.
TEST(World, MpirunInsideSbatchTakesRanksFromMpiNotSlurm) {
  for (int rank : {0, 1, 2, 3}) {
    World w = from({{"OMPI_COMM_WORLD_RANK", std::to_string(rank)},
                    {"OMPI_COMM_WORLD_SIZE", "4"},
                    {"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(rank)},
                    {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                    {"SLURM_PROCID", "0"},
                    {"SLURM_NTASKS", "1"},
                    {"SLURM_JOB_ID", "99"},
                    {"SLURM_STEP_ID", "0"},
                    {"SLURM_STEP_NODELIST", "node01"},
                    {"SLURM_JOB_NODELIST", "node01"}});
    EXPECT_EQ(w.launcher, "openmpi");
    EXPECT_EQ(w.rank, rank);
    EXPECT_EQ(w.size, 4);
    EXPECT_EQ(w.master_addr, "");  // the ranks meet over MPI (comm/mpi's rendezvous)
    EXPECT_EQ(w.master_port, 0);
  }
}

// The error for a job without a store tells the user to set MASTER_ADDR and MASTER_PORT; under
// srun (and mpirun, PMI) the ranks must then find them.
TEST(World, MasterAddressUnderSrunAndOtherLaunchers) {
  const std::map<std::string, std::string> master = {{"MASTER_ADDR", "10.0.0.7"},
                                                     {"MASTER_PORT", "29500"}};
  for (auto vars : std::vector<std::map<std::string, std::string>>{
           {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"}},
           {{"PMIX_RANK", "1"}, {"SLURM_NTASKS", "2"}},
           {{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}},
           {{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}}}) {
    vars.insert(master.begin(), master.end());
    World w = from(vars);
    EXPECT_EQ(w.rank, 1);
    EXPECT_EQ(w.master_addr, "10.0.0.7") << w.launcher;
    EXPECT_EQ(w.master_port, 29500) << w.launcher;
  }
  // weftrun names its own store (WEFT_STORE_ADDR): a MASTER_ADDR left in the shell is not used.
  World w = from({{"WEFT_RANK", "0"}, {"WEFT_WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.7"},
                  {"MASTER_PORT", "29500"}});
  EXPECT_EQ(w.master_addr, "");
  EXPECT_EQ(w.master_port, 0);
  std::string m = error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"},
                            {"MASTER_ADDR", "h"}, {"MASTER_PORT", "x"}});
  EXPECT_NE(m.find("slurm variable MASTER_PORT='x'"), std::string::npos) << m;
}

TEST(World, RankNotBelowSizeNamesTheVariables) {
  std::string m = error_of({{"WEFT_RANK", "4"}, {"WEFT_WORLD_SIZE", "4"}});
  EXPECT_NE(m.find("WEFT_RANK=4"), std::string::npos) << m;
  EXPECT_NE(m.find("WEFT_WORLD_SIZE=4"), std::string::npos) << m;
}

TEST(World, MalformedNumbersAreErrors) {
  std::string m = error_of({{"RANK", "one"}, {"WORLD_SIZE", "2"}});
  EXPECT_NE(m.find("RANK='one'"), std::string::npos) << m;
  error_of({{"WEFT_RANK", "-1"}, {"WEFT_WORLD_SIZE", "2"}});
  error_of({{"WEFT_RANK", "0"}, {"WEFT_WORLD_SIZE", "0"}});
}

TEST(World, HalfSetIsAnError) {
  EXPECT_NE(error_of({{"WEFT_RANK", "0"}}).find("WEFT_WORLD_SIZE"), std::string::npos);
  EXPECT_NE(error_of({{"WEFT_WORLD_SIZE", "2"}}).find("WEFT_RANK"), std::string::npos);
}

TEST(World, LocalRankBeyondLocalSize) {
  std::string m = error_of({{"WEFT_RANK", "1"}, {"WEFT_WORLD_SIZE", "4"}, {"WEFT_LOCAL_RANK", "2"},
                            {"WEFT_LOCAL_WORLD_SIZE", "2"}});
  EXPECT_NE(m.find("WEFT_LOCAL_RANK=2"), std::string::npos) << m;
}

}  // namespace
}  // namespace weft
