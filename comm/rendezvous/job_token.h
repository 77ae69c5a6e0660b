#pragma once
// The job token: the secret every store and tcp transport connection of a job presents, so that
// no one else joins it. weftrun and mpirun's rendezvous make a fresh one per job and hand it to
// their ranks. Ranks started with torchrun-style variables (MASTER_ADDR, MASTER_PORT) have no
// one to hand them a token, so they find it here:
//
//   WEFT_TOKEN set                -> that token (the user gives every rank, on every node, the
//                                    same one)
//   the job is on this machine    -> the per-user secret, $TMPDIR/weft-<uid>/secret (created on
//   (MASTER_ADDR is an address       first use)
//   of it, every rank local)
//   across machines, WEFT_INSECURE=1 -> no token, and a warning on every rank
//   across machines otherwise     -> InvalidArgument: export WEFT_TOKEN=$(openssl rand -hex 16)
//
// Why a per-user secret file: a 0600 file in a 0700 directory is readable by the processes of
// one user only, so the ranks of a job (all that user's) present it without being told, and a
// process of another user on the same machine cannot: its connection is refused (and logged)
// before it can touch a key, so it takes no rank's place. The same token guards the tcp
// transport's handshakes; shared-memory files are 0600 and named only in the store. A peer's
// uid (SO_PEERCRED) would need a Unix socket, which a tcp connection is not.
#include <cstddef>
#include <string>
#include <string_view>

#include "runtime/world.h"

namespace weft::comm {

// How rank 0 serves the store of a torchrun-style job and what every connection presents.
struct MasterStoreAccess {
  std::string bind_host;    // WEFT_STORE_BIND, else MASTER_ADDR: never every interface unasked
  std::string token;        // empty only with WEFT_INSECURE=1
  std::string secret_path;  // where the token came from when it is the per-user secret
};
// Throws InvalidArgument (a usage error: exit 2) for a job across machines without WEFT_TOKEN.
MasterStoreAccess master_store_access(const World& w);

// The token of a job whose coordinator listens at `host` and whose ranks were not handed one
// (weftrun --coordinator, weft-coordinator --bind): WEFT_TOKEN when set; this user's secret
// when `host` is loopback (only this machine's processes can reach it); none with
// WEFT_INSECURE=1 (warned); otherwise InvalidArgument saying to export WEFT_TOKEN. `place`
// names what put the coordinator there, for the message ("--coordinator 10.0.0.1:29400").
std::string coordinator_token(const std::string& host, const std::string& place);

// The per-user secret in `dir` (created 0700 if missing), made on first use. Refuses, naming the
// path and what to do, a directory or file that another user owns or others can read.
std::string user_secret(const std::string& dir);
// $TMPDIR/weft-<effective uid> (/tmp when TMPDIR is unset).
std::string user_secret_dir();

// user_secret_dir(), created 0700 if missing and refused as user_secret() refuses it: where
// weft keeps what only this user's processes may reach (the secret, the shm transport's sockets).
std::string user_private_dir();

// Whether two tokens are equal, in a time that does not say where they differ.
bool same_token(std::string_view a, std::string_view b);

}  // namespace weft::comm
