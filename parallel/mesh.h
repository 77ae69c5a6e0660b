#pragma once
// DeviceMesh: the world's ranks laid out as dp x pp x tp, with one communicator per axis.
//
// Tensor parallelism varies fastest: world rank = (dp_i * pp + pp_i) * tp + tp_i, so a tp group
// is tp consecutive ranks, which launchers place on one node (tp moves the most bytes, several
// allreduces per layer); then the pipeline stages; data parallelism outermost, as Megatron-LM
// lays them out. Each axis's communicator holds the ranks that differ only along that axis, in
// the order of that coordinate (tp(): same dp_i and pp_i, ranked by tp_i; pp(): same dp_i and
// tp_i, ranked by pp_i; dp(): same pp_i and tp_i, ranked by dp_i).
//
// No globals (unlike Megatron's parallel state): the mesh is built once from the world
// communicator and passed to whatever needs a group. It must outlive nothing but itself: the
// axis communicators are its own; the world communicator it was built from may go before it.
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace weft::parallel {

// How many ranks along each axis; their product is the world size.
struct MeshShape {
  int dp = 1;
  int tp = 1;
  int pp = 1;
  int ranks() const { return dp * tp * pp; }
  std::string describe() const;  // "dp 2 x tp 2 x pp 2"
};

// A rank's place in the mesh: its index along each axis.
struct MeshCoords {
  int dp = 0;
  int tp = 0;
  int pp = 0;
  bool operator==(const MeshCoords&) const = default;
};

// Throws InvalidArgument unless every axis is at least 1 and the product is `world_size`,
// saying which number to change to what (dp first: it takes what tp x pp leave).
void check_mesh_shape(const MeshShape& shape, int world_size);

// World rank <-> coordinates under `shape`, tp fastest.
MeshCoords mesh_coords(const MeshShape& shape, int world_rank);
int mesh_rank(const MeshShape& shape, const MeshCoords& coords);

class DeviceMesh {
 public:
  // Collective over `world`: every rank calls it with the same shape (checked: ranks that
  // disagree all fail with InvalidArgument naming both shapes), and each axis's communicator
  // is split from `world`. Throws as check_mesh_shape() does when the shape does not fit.
  DeviceMesh(comm::Communicator& world, const MeshShape& shape);
  ~DeviceMesh();
  DeviceMesh(DeviceMesh&&) noexcept;
  DeviceMesh& operator=(DeviceMesh&&) noexcept;

  const MeshShape& shape() const { return shape_; }
  const MeshCoords& coords() const { return coords_; }
  int world_rank() const { return mesh_rank(shape_, coords_); }

  comm::Communicator& tp() const { return *tp_; }
  comm::Communicator& pp() const { return *pp_; }
  comm::Communicator& dp() const { return *dp_; }

  bool first_stage() const { return coords_.pp == 0; }
  bool last_stage() const { return coords_.pp == shape_.pp - 1; }
  // Tied input/output embeddings under pipeline parallelism (Megatron's embedding group): the
  // first and the last stage of this rank's (dp_i, tp_i), which sum their embedding gradients
  // here (rank 0 the first stage, rank 1 the last). Null on the stages between, and everywhere
  // when pp is 1 (then one stage holds both uses of the embedding).
  comm::Communicator* embedding() const { return embedding_.get(); }

 private:
  MeshShape shape_;
  MeshCoords coords_;
  std::unique_ptr<comm::Communicator> tp_, pp_, dp_, embedding_;
};

}  // namespace weft::parallel
