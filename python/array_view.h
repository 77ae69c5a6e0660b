#pragma once
// What a collective needs of a Python array: its memory, element type and count, taken without
// a copy, and whatever keeps that memory alive until the op is done. Anything with the buffer
// protocol (numpy arrays, bytearray, memoryview) is read through it; anything else with
// __dlpack__ (PyTorch tensors, including bfloat16 ones the buffer protocol cannot describe)
// through DLPack. The array must be C-contiguous; its memory may be the host's or a GPU's (the
// C API asks CUDA which).
//
// Made and destroyed with the GIL held; data() may be used without it.
#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <string>

#include "include/weft/weft.h"

namespace weft::python {

namespace py = pybind11;

class ArrayView {
 public:
  // `name` ("x", "out") names the argument in errors; `writable`: the op writes into it.
  static ArrayView of(const py::handle& array, const char* name, bool writable);

  void* data() const { return data_; }
  size_t count() const { return count_; }  // elements
  weft_dtype_t dtype() const { return dtype_; }
  const std::string& dtype_name() const { return dtype_name_; }

 private:
  static ArrayView from_buffer(const py::handle& array, const char* name, bool writable);
  static ArrayView from_dlpack(const py::handle& array, const char* name);

  void* data_ = nullptr;
  size_t count_ = 0;
  weft_dtype_t dtype_ = WEFT_FLOAT32;
  std::string dtype_name_;
  // The exporter's hold on the memory: the Py_buffer (released when the last copy goes), or
  // the DLPack capsule (whose destructor calls the tensor's deleter).
  std::shared_ptr<py::buffer_info> buffer_;
  py::object capsule_;
};

}  // namespace weft::python
