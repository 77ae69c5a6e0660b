#pragma once
// Removing the shared-memory files of ranks that died. A rank's file in /dev/shm is named
// "weft-<job>-<group>-r<rank>-p<pid>" (see transport_shm.cc). Its owner unlinks it once every
// peer has mapped it, so a file still there whose <pid> has exited was left by a rank that died
// during set-up: its peers remove it when they stop (sweep_job_files), and any later shm set-up
// on the node removes the leftovers of jobs that are gone (sweep_dead_files). weftrun removes
// its job's files by name when the job ends (launcher/shm_cleanup.h).
#include <chrono>
#include <string>
#include <vector>

namespace weft::comm::shm {

// Unlinks every "/dev/shm/weft-*-p<pid>" file whose <pid> has exited; returns their names.
// A file of another pid namespace (a container sharing /dev/shm) is left alone, and so is one
// whose header is not written yet unless it is over a minute old: another container may be
// creating it now. Never throws.
std::vector<std::string> sweep_dead_files();

// The same for the files of one job ("weft-<job>-", the caller's `prefix`), waiting up to
// `grace` for owners that are still exiting: a peer's death can be heard (its sockets close)
// just before its process is gone. Headers need not be written: the job's ranks share this
// node's pid namespace. Never throws.
std::vector<std::string> sweep_job_files(const std::string& prefix,
                                         std::chrono::milliseconds grace);

}  // namespace weft::comm::shm
