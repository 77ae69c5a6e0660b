#include "comm/rendezvous/store.h"

namespace weft::comm {

void store_barrier(Store& store, const std::string& name, int size, Deadline deadline) {
  // The last rank to arrive sets the release key that everyone waits on.
  if (store.add("barrier/" + name + "/count", 1) == size) store.set("barrier/" + name + "/done", "1");
  store.wait({"barrier/" + name + "/done"}, deadline);
}

}  // namespace weft::comm
