#include "launcher/job_identity.h"

#include <unistd.h>

#include "runtime/random.h"

namespace weft::launcher {

JobIdentity JobIdentity::generate() {
  JobIdentity id;
  id.job_id = "j" + std::to_string(::getpid()) + random_hex(4);
  id.token = random_hex(16);
  return id;
}

}  // namespace weft::launcher
