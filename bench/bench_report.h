#pragma once
// What a collective benchmark reports, in the nccl-tests conventions every reader knows:
//   algbw = bytes / time
//   busbw = algbw x factor, the factor making busbw comparable with the link bandwidth:
//           allreduce 2(n-1)/n, allgather and reduce_scatter (n-1)/n, broadcast 1.
// `bytes` is the full buffer: the output of allgather, the input of reduce_scatter.
// One JSON object per line (--json) or a fixed-width table; the weft, MPI and Gloo programs all
// print through here so bench/compare-collectives can read any of them.
#include <cstddef>
#include <cstdio>
#include <string>

namespace weft::bench {

double busbw_factor(const std::string& op, int ranks);

struct Measurement {
  std::string op;       // allreduce, allgather, reduce_scatter, broadcast
  std::string backend;  // shm, tcp, mpi, mpi-tuned, gloo, ...
  int ranks = 0;
  size_t bytes = 0;
  double seconds_per_op = 0;  // slowest rank's mean over the timed iterations
  size_t iters = 0;
  // Which path weft's op took: "direct" (in place on registered memory), "cma" (single-copy
  // reads), "hierarchical" or "hier-direct" (across nodes: comm/hierarchy.h), else "transport"
  // (the backend's algorithms; the other programs' only path).
  std::string path = "transport";

  double time_us() const { return seconds_per_op * 1e6; }
  double algbw_gbs() const;  // GB/s with G = 1e9, as nccl-tests
  double busbw_gbs() const;
};

// {"op":...,"backend":...,"ranks":...,"bytes":...,"time_us":...,"algbw_gbs":...,"busbw_gbs":...,
//  "iters":...,"path":...}
std::string json_line(const Measurement& m);
void print_table_header(std::FILE* out);
void print_table_row(std::FILE* out, const Measurement& m);
// One line on stdout, JSON or a table row, flushed (a driver reads it as it comes).
void print_measurement(const Measurement& m, bool json);

// Memory copy bandwidth of every rank copying at once: the unit of the memory-traffic bound.
struct CopyBandwidth {
  std::string backend;
  int ranks = 0;
  size_t bytes = 0;     // size of one memcpy
  double copy_gbs = 0;  // (bytes read + bytes written) / time, slowest rank
};
std::string json_line(const CopyBandwidth& c);
void print_table_line(std::FILE* out, const CopyBandwidth& c);

// "64 MiB", "1 KiB", "8 B".
std::string format_bytes(size_t bytes);

}  // namespace weft::bench
