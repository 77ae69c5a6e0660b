#include "python/array_view.h"

#include <dlpack/dlpack.h>

#include <string_view>
#include <vector>

#include "python/status_error.h"

namespace weft::python {
namespace {

const char* name_of(weft_dtype_t dtype) {
  switch (dtype) {
    case WEFT_FLOAT32:
      return "float32";
    case WEFT_FLOAT16:
      return "float16";
    case WEFT_BFLOAT16:
      return "bfloat16";
    case WEFT_FLOAT64:
      return "float64";
    case WEFT_INT32:
      return "int32";
    case WEFT_INT64:
      return "int64";
    case WEFT_UINT8:
      return "uint8";
  }
  return "?";
}

constexpr const char* kSupported =
    "weft takes float32, float16, bfloat16, float64, int32, int64 and uint8 (or bool)";

// A struct module format ("f", "<d", "=q", ...) of `itemsize` bytes, as weft's dtype.
weft_dtype_t dtype_of_format(std::string_view format, size_t itemsize, const char* name) {
  if (!format.empty() && (format[0] == '>' || format[0] == '!'))
    invalid(std::string(name) + " is big-endian (format '" + std::string(format) +
            "'): convert it to the machine's byte order first");
  if (!format.empty() && (format[0] == '@' || format[0] == '=' || format[0] == '<'))
    format.remove_prefix(1);
  if (format.size() == 1) {
    switch (format[0]) {
      case 'e':
        return WEFT_FLOAT16;
      case 'f':
        return WEFT_FLOAT32;
      case 'd':
        return WEFT_FLOAT64;
      case 'b':
      case 'h':
      case 'i':
      case 'l':
      case 'q':
        if (itemsize == 4) return WEFT_INT32;
        if (itemsize == 8) return WEFT_INT64;
        break;
      case 'B':
      case 'c':
      case '?':
        if (itemsize == 1) return WEFT_UINT8;
        break;
    }
  }
  invalid(std::string(name) + " has elements of format '" + std::string(format) + "' (" +
          std::to_string(itemsize) + " bytes): " + kSupported);
}

weft_dtype_t dtype_of_dlpack(const DLDataType& t, const char* name) {
  if (t.lanes == 1) {
    if (t.code == kDLFloat && t.bits == 16) return WEFT_FLOAT16;
    if (t.code == kDLFloat && t.bits == 32) return WEFT_FLOAT32;
    if (t.code == kDLFloat && t.bits == 64) return WEFT_FLOAT64;
    if (t.code == kDLBfloat && t.bits == 16) return WEFT_BFLOAT16;
    if (t.code == kDLInt && t.bits == 32) return WEFT_INT32;
    if (t.code == kDLInt && t.bits == 64) return WEFT_INT64;
    if (t.code == kDLUInt && t.bits == 8) return WEFT_UINT8;
  }
  invalid(std::string(name) + " has DLPack elements of type code " + std::to_string(t.code) + ", " +
          std::to_string(t.bits) + " bits, " + std::to_string(t.lanes) + " lanes: " + kSupported);
}

// Whether `strides` (in units of `unit`; empty: compact) lay `shape` out in C order.
bool c_contiguous(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                  int64_t unit) {
  int64_t expected = unit;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && !strides.empty() && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

[[noreturn]] void not_contiguous(const char* name) {
  invalid(std::string(name) +
          " is not C-contiguous: weft works on the memory as it is, so pass a contiguous array "
          "(numpy.ascontiguousarray(x), x.contiguous())");
}

}  // namespace

ArrayView ArrayView::of(const py::handle& array, const char* name, bool writable) {
  if (PyObject_CheckBuffer(array.ptr())) return from_buffer(array, name, writable);
  if (py::hasattr(array, "__dlpack__")) {
    // PyTorch exports no tensor that autograd tracks; the data is the same without it.
    if (py::hasattr(array, "requires_grad") && py::bool_(array.attr("requires_grad")))
      return from_dlpack(array.attr("detach")(), name);
    return from_dlpack(array, name);
  }
  throw py::type_error(std::string(name) + " is a " + std::string(py::str(array.get_type())) +
                       ", not an array: pass a numpy array, a torch tensor, or anything with "
                       "the buffer protocol or __dlpack__");
}

ArrayView ArrayView::from_buffer(const py::handle& array, const char* name, bool writable) {
  auto buffer = std::make_shared<py::buffer_info>();
  try {
    *buffer = py::reinterpret_borrow<py::buffer>(array).request(writable);
  } catch (py::error_already_set& e) {
    invalid(std::string(name) + ": " + e.what() +
            (writable ? " (weft writes into it: pass a writable array)" : ""));
  }
  ArrayView v;
  v.dtype_ = dtype_of_format(buffer->format, static_cast<size_t>(buffer->itemsize), name);
  v.dtype_name_ = name_of(v.dtype_);
  if (!c_contiguous(buffer->shape, buffer->strides, buffer->itemsize)) not_contiguous(name);
  v.data_ = buffer->ptr;
  v.count_ = static_cast<size_t>(buffer->size);
  v.buffer_ = std::move(buffer);
  return v;
}

ArrayView ArrayView::from_dlpack(const py::handle& array, const char* name) {
  py::object capsule = array.attr("__dlpack__")();
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  if (managed == nullptr) throw py::error_already_set();
  const DLTensor& t = managed->dl_tensor;
  switch (t.device.device_type) {
    case kDLCPU:
    case kDLCUDA:
    case kDLCUDAHost:
    case kDLCUDAManaged:
      break;
    default:
      invalid(std::string(name) + " lives on DLPack device type " +
              std::to_string(t.device.device_type) + ": weft takes host and CUDA memory");
  }
  ArrayView v;
  v.dtype_ = dtype_of_dlpack(t.dtype, name);
  v.dtype_name_ = name_of(v.dtype_);
  std::vector<int64_t> shape(t.shape, t.shape + t.ndim), strides;
  if (t.strides != nullptr) strides.assign(t.strides, t.strides + t.ndim);
  if (!c_contiguous(shape, strides, 1)) not_contiguous(name);
  v.count_ = 1;
  for (int64_t n : shape) v.count_ *= static_cast<size_t>(n);
  v.data_ = static_cast<char*>(t.data) + t.byte_offset;
  // Not renamed "used_dltensor": the capsule stays the owner, and its destructor (with the
  // view's last copy) hands the tensor back to its exporter.
  v.capsule_ = std::move(capsule);
  return v;
}

}  // namespace weft::python
