#include "parallel/mesh.h"

#include <cstdint>
#include <vector>

#include "runtime/error.h"

namespace weft::parallel {

std::string MeshShape::describe() const {
  return "dp " + std::to_string(dp) + " x tp " + std::to_string(tp) + " x pp " + std::to_string(pp);
}

void check_mesh_shape(const MeshShape& shape, int world_size) {
  const std::pair<const char*, int> axes[] = {{"dp", shape.dp}, {"tp", shape.tp}, {"pp", shape.pp}};
  for (const auto& [name, n] : axes)
    if (n < 1)
      throw Error(ErrorCode::InvalidArgument,
                  std::string("mesh ") + shape.describe() + ": " + name + " must be at least 1");
  if (shape.ranks() == world_size) return;
  // The first axis that can take up the difference alone, dp first (it is what the others
  // leave); else the sizes must be chosen afresh.
  std::string fix;
  for (const auto& [name, n] : axes) {
    const int others = shape.ranks() / n;
    if (world_size % others == 0) {
      fix = std::string("set ") + name + " to " + std::to_string(world_size / others);
      break;
    }
  }
  if (fix.empty()) fix = "choose dp, tp and pp whose product is " + std::to_string(world_size);
  throw Error(ErrorCode::InvalidArgument,
              "mesh " + shape.describe() + " needs " + std::to_string(shape.ranks()) +
                  " ranks, but the world has " + std::to_string(world_size) + ": " + fix);
}

MeshCoords mesh_coords(const MeshShape& shape, int world_rank) {
  return {world_rank / (shape.tp * shape.pp), world_rank % shape.tp,
          (world_rank / shape.tp) % shape.pp};
}

int mesh_rank(const MeshShape& shape, const MeshCoords& c) {
  return (c.dp * shape.pp + c.pp) * shape.tp + c.tp;
}

namespace {

// Every rank's shape, so that ranks asking for different meshes fail alike, naming two of them,
// instead of splitting into groups that do not match.
void check_every_rank_agrees(comm::Communicator& world, const MeshShape& shape) {
  const int n = world.size();
  int32_t mine[3] = {shape.dp, shape.tp, shape.pp};
  std::vector<int32_t> all(3 * static_cast<size_t>(n));
  world
      .allgather(Tensor::flat(mine, DType::i32, 3),
                 Tensor::flat(all.data(), DType::i32, all.size()))
      .wait();
  for (int r = 0; r < n; r++) {
    MeshShape theirs{all[3 * r], all[3 * r + 1], all[3 * r + 2]};
    if (theirs.dp != shape.dp || theirs.tp != shape.tp || theirs.pp != shape.pp)
      throw Error(ErrorCode::InvalidArgument,
                  "rank " + std::to_string(world.rank()) + " built the mesh " + shape.describe() +
                      ", but rank " + std::to_string(r) + " built " + theirs.describe() +
                      ": every rank must build the mesh with the same shape");
  }
}

}  // namespace

DeviceMesh::DeviceMesh(comm::Communicator& world, const MeshShape& shape) : shape_(shape) {
  check_every_rank_agrees(world, shape);
  check_mesh_shape(shape, world.size());
  coords_ = mesh_coords(shape, world.rank());
  const MeshCoords& c = coords_;
  // Every rank makes the same splits in the same order (each is collective over the world).
  tp_ = world.split(c.dp * shape.pp + c.pp, c.tp);
  pp_ = world.split(c.dp * shape.tp + c.tp, c.pp);
  dp_ = world.split(c.pp * shape.tp + c.tp, c.dp);
  if (shape.pp > 1) {
    const bool end_stage = first_stage() || last_stage();
    embedding_ = world.split(end_stage ? c.dp * shape.tp + c.tp : -1, c.pp);
  }
}

DeviceMesh::~DeviceMesh() = default;
DeviceMesh::DeviceMesh(DeviceMesh&&) noexcept = default;
DeviceMesh& DeviceMesh::operator=(DeviceMesh&&) noexcept = default;

}  // namespace weft::parallel
