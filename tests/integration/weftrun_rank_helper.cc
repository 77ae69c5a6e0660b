// A rank program for weftrun's integration tests: proves that what weftrun hands a rank is
// enough to meet the others.
//   weftrun_rank_helper store       rendezvous through the store weftrun serves
//   weftrun_rank_helper allreduce   build the world communicator and allreduce rank+1 (also
//                                   as a rank started with torchrun-style variables)
//   weftrun_rank_helper lost-during-setup R
//                                   rank R fails (exit 3) once the others have created their
//                                   shared-memory files and wait for it in the shm transport's
//                                   set-up; weftrun then stops them, and must remove the files
//   weftrun_rank_helper dies-before-setup R
//                                   rank R is killed (SIGKILL) before it even reaches the store;
//                                   the others set up the world communicator and wait for it
//   weftrun_rank_helper hear-rank-lost R
//                                   rank R is killed at once; the others print the death notice
//                                   weftrun posts in the store, and fail
//   weftrun_rank_helper stopped-mid-training R
//                                   every rank allreduces 1 MiB steps; after its fifth, rank R
//                                   stops itself (SIGSTOP), printing its pid and the time; the
//                                   others, blocked in their next allreduce, print the time and
//                                   the error that ended it (PeerLost from the coordinator's
//                                   heartbeat deadline)
//   weftrun_rank_helper until-cut-off
//                                   every rank allreduces 1 MiB steps, says when it has passed
//                                   the fifth, and goes on until an allreduce fails, printing
//                                   the time and the error (a machine cut off from the others)
#include <signal.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/rendezvous/coordinator.h"
#include "runtime/clock.h"
#include "runtime/env.h"
#include "runtime/error.h"
#include "runtime/world.h"

namespace {

using namespace std::chrono_literals;

int meet_through_store(const weft::World& world) {
  auto store = weft::comm::CoordinatorStore::connect(
      weft::env::get("WEFT_STORE_ADDR"), weft::env::get("WEFT_TOKEN"), weft::deadline_after(10s));
  store->set("helper/rank" + std::to_string(world.rank), world.job_id);
  int met = 0;
  for (int r = 0; r < world.size; ++r)
    if (store->get("helper/rank" + std::to_string(r), weft::deadline_after(10s)) == world.job_id)
      ++met;
  std::printf("rank %d/%d met %d ranks\n", world.rank, world.size, met);
  return met == world.size ? 0 : 1;
}

int allreduce(const weft::World& world) {
  auto comm = weft::comm::init_from_env();
  float value = static_cast<float>(world.rank + 1);
  comm->allreduce(weft::Tensor::flat(&value, weft::DType::f32, 1)).wait();
  std::printf("rank %d allreduce %g over %s\n", world.rank, static_cast<double>(value),
              comm->backend());
  return 0;
}

int count_shm_files(const std::string& job_id) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
    if (entry.path().filename().string().rfind("weft-" + job_id + "-", 0) == 0) ++n;
  return n;
}

int lose_rank_during_setup(const weft::World& world, int lost_rank) {
  if (world.rank != lost_rank) {
    weft::comm::init_from_env("shm");  // waits for lost_rank until weftrun stops this rank
    return 0;
  }
  auto give_up = weft::deadline_after(10s);
  while (count_shm_files(world.job_id) < world.size - 1 && weft::Clock::now() < give_up)
    std::this_thread::sleep_for(10ms);
  std::printf("rank %d saw %d shm files of the other ranks\n", world.rank,
              count_shm_files(world.job_id));
  return 3;
}

int die_before_setup(const weft::World& world, int lost_rank) {
  if (world.rank == lost_rank) ::raise(SIGKILL);
  weft::comm::init_from_env();  // waits for lost_rank until weftrun stops this rank
  return 0;
}

int hear_rank_lost(const weft::World& world, int lost_rank) {
  if (world.rank == lost_rank) ::raise(SIGKILL);
  auto store = weft::comm::CoordinatorStore::connect(
      weft::env::get("WEFT_STORE_ADDR"), weft::env::get("WEFT_TOKEN"), weft::deadline_after(10s));
  std::string notice = store->get("weft/rank-lost", weft::deadline_after(20s));
  std::printf("rank %d heard: %s\n", world.rank, notice.c_str());
  return 1;
}

// Milliseconds since the epoch: comparable across the ranks' processes.
long long wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Steps of 1 MiB allreduces until one fails. After the fifth, rank `stopped_rank` (-1: none)
// stops itself; every other rank says it passed it.
int train_until_failure(const weft::World& world, int stopped_rank) {
  auto comm = weft::comm::init_from_env();
  std::vector<float> grads(256 * 1024, 1.0f);
  for (int step = 1;; ++step) {
    try {
      comm->allreduce(weft::Tensor::flat(grads.data(), weft::DType::f32, grads.size())).wait();
    } catch (const weft::Error& e) {
      std::printf("rank %d failed at %lld ms in step %d: %s\n", world.rank, wall_ms(), step,
                  e.what());
      return 1;
    }
    if (step == 5 && world.rank == stopped_rank) {
      std::printf("rank %d (pid %d) stops at %lld ms\n", world.rank, static_cast<int>(::getpid()),
                  wall_ms());
      std::fflush(stdout);
      ::raise(SIGSTOP);
    } else if (step == 5) {
      std::printf("rank %d passed step 5\n", world.rank);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    weft::World world = weft::World::from_env();
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "store") return meet_through_store(world);
    if (mode == "allreduce") return allreduce(world);
    if (mode == "lost-during-setup" && argc > 2)
      return lose_rank_during_setup(world, std::atoi(argv[2]));
    if (mode == "dies-before-setup" && argc > 2) return die_before_setup(world, std::atoi(argv[2]));
    if (mode == "hear-rank-lost" && argc > 2) return hear_rank_lost(world, std::atoi(argv[2]));
    if (mode == "stopped-mid-training" && argc > 2)
      return train_until_failure(world, std::atoi(argv[2]));
    if (mode == "until-cut-off") return train_until_failure(world, -1);
    std::fprintf(stderr,
                 "usage: %s store | allreduce | lost-during-setup RANK | dies-before-setup RANK | "
                 "hear-rank-lost RANK | stopped-mid-training RANK | until-cut-off\n",
                 argv[0]);
    return 2;
  } catch (const weft::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return e.code() == weft::ErrorCode::InvalidArgument ? 2 : 1;  // bad usage, as weft-train
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
