// weft._weft_torch: makes and closes the torch.distributed backend's process groups
// (process_group_weft.h). weft/torch.py registers the backend and calls these.
#include <torch/csrc/utils/pybind.h>

#include <cstdint>

#include "python/process_group_weft.h"

namespace py = pybind11;
using weft::python::ProcessGroupWeft;

PYBIND11_MODULE(_weft_torch, m) {
  // c10d's ProcessGroup must be known to pybind11 before one is returned.
  py::module_::import("torch.distributed");
  m.def(
      "create",
      [](uintptr_t comm, int rank, int size) -> c10::intrusive_ptr<c10d::ProcessGroup> {
        return c10::make_intrusive<ProcessGroupWeft>(reinterpret_cast<weft_comm_t>(comm), rank,
                                                     size);
      },
      py::arg("comm"), py::arg("rank"), py::arg("size"),
      "A process group that takes over the communicator at address `comm` (Communicator's "
      "_release())");
  m.def(
      "close",
      [](const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
        if (auto* weft_group = dynamic_cast<ProcessGroupWeft*>(group.get())) {
          py::gil_scoped_release unlocked;
          weft_group->close();
        }
      },
      py::arg("group"), "Waits for the group's ops, then frees its communicator");
}
