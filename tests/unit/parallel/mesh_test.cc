// DeviceMesh over in-process ranks: for several shapes, each rank's coordinates against the
// layout written out by hand (tp fastest), and an allreduce on every axis communicator whose
// sum names exactly the world ranks that took part; the embedding group; shapes refused with
// the number to change.
#include "parallel/mesh.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "tests/support/inproc_group.h"

namespace weft::testing {
namespace {

using parallel::DeviceMesh;
using parallel::MeshCoords;
using parallel::MeshShape;

comm::CommOptions options() {
  comm::CommOptions o;
  o.timeout = std::chrono::seconds(20);
  return o;
}

// The world ranks a group holds, as the sum of 1 << world rank over its members: each member
// contributes its own bit, so the allreduce's result is the set of ranks it summed.
uint64_t members_of(comm::Communicator& group, int world_rank) {
  int64_t bit = int64_t{1} << world_rank;
  group.allreduce(Tensor::flat(&bit, DType::i64, 1)).wait();
  return static_cast<uint64_t>(bit);
}

// The expected set, by brute force over every world rank: those whose coordinates equal
// `mine` except along the axis the group spans.
template <typename SameGroup>
uint64_t expected_members(const MeshShape& s, SameGroup same) {
  uint64_t set = 0;
  int r = 0;
  for (int d = 0; d < s.dp; d++)
    for (int p = 0; p < s.pp; p++)
      for (int t = 0; t < s.tp; t++, r++)
        if (same(MeshCoords{d, t, p})) set |= uint64_t{1} << r;
  return set;
}

class Mesh : public ::testing::TestWithParam<MeshShape> {};

TEST_P(Mesh, CoordinatesAndAxisGroups) {
  const MeshShape s = GetParam();
  run_inproc_group(s.ranks(), options(), [&](comm::Communicator& world) {
    const int r = world.rank();
    DeviceMesh mesh(world, s);
    const MeshCoords c = mesh.coords();
    // The layout written out: r = (dp_i * pp + pp_i) * tp + tp_i.
    EXPECT_EQ(r, (c.dp * s.pp + c.pp) * s.tp + c.tp);
    EXPECT_TRUE(c.dp >= 0 && c.dp < s.dp && c.tp >= 0 && c.tp < s.tp && c.pp >= 0 && c.pp < s.pp);
    EXPECT_EQ(mesh.world_rank(), r);

    EXPECT_EQ(mesh.tp().size(), s.tp);
    EXPECT_EQ(mesh.pp().size(), s.pp);
    EXPECT_EQ(mesh.dp().size(), s.dp);
    EXPECT_EQ(mesh.tp().rank(), c.tp);
    EXPECT_EQ(mesh.pp().rank(), c.pp);
    EXPECT_EQ(mesh.dp().rank(), c.dp);

    EXPECT_EQ(members_of(mesh.tp(), r), expected_members(s, [&](const MeshCoords& o) {
                return o.dp == c.dp && o.pp == c.pp;
              }));
    EXPECT_EQ(members_of(mesh.pp(), r), expected_members(s, [&](const MeshCoords& o) {
                return o.dp == c.dp && o.tp == c.tp;
              }));
    EXPECT_EQ(members_of(mesh.dp(), r), expected_members(s, [&](const MeshCoords& o) {
                return o.pp == c.pp && o.tp == c.tp;
              }));

    // The embedding group: first and last stage of the same (dp_i, tp_i), only when pp > 1.
    const bool end_stage = s.pp > 1 && (c.pp == 0 || c.pp == s.pp - 1);
    ASSERT_EQ(mesh.embedding() != nullptr, end_stage);
    if (end_stage) {
      EXPECT_EQ(mesh.embedding()->size(), 2);
      EXPECT_EQ(mesh.embedding()->rank(), c.pp == 0 ? 0 : 1);
      EXPECT_EQ(members_of(*mesh.embedding(), r), expected_members(s, [&](const MeshCoords& o) {
                  return o.dp == c.dp && o.tp == c.tp && (o.pp == 0 || o.pp == s.pp - 1);
                }));
    }
    // The world can go first: the mesh's communicators are its own.
    world.barrier().wait();
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, Mesh,
                         ::testing::Values(MeshShape{2, 2, 2}, MeshShape{1, 2, 2},
                                           MeshShape{2, 1, 2}, MeshShape{2, 2, 1},
                                           MeshShape{1, 1, 4}, MeshShape{1, 4, 1},
                                           MeshShape{4, 1, 1}, MeshShape{1, 2, 4},
                                           MeshShape{2, 1, 3}, MeshShape{1, 1, 1}),
                         [](const auto& info) {
                           const MeshShape& s = info.param;
                           return "dp" + std::to_string(s.dp) + "_tp" + std::to_string(s.tp) +
                                  "_pp" + std::to_string(s.pp);
                         });

TEST(MeshShapeCheck, SaysWhichNumberToChangeToWhat) {
  auto message = [](MeshShape s, int world) {
    try {
      parallel::check_mesh_shape(s, world);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message({2, 2, 2}, 8), "accepted");
  // dp takes what tp x pp leave, when it can.
  EXPECT_NE(message({3, 2, 2}, 8).find("set dp to 2"), std::string::npos);
  EXPECT_NE(message({1, 2, 2}, 16).find("set dp to 4"), std::string::npos);
  // Else tp, else pp.
  EXPECT_NE(message({2, 4, 3}, 18).find("set tp to 3"), std::string::npos);
  EXPECT_NE(message({2, 2, 3}, 8).find("set pp to 2"), std::string::npos);
  EXPECT_NE(message({2, 2, 3}, 8).find("dp 2 x tp 2 x pp 3 needs 12 ranks, but the world has 8"),
            std::string::npos);
  EXPECT_NE(message({2, 3, 5}, 8).find("choose dp, tp and pp whose product is 8"),
            std::string::npos);
  EXPECT_NE(message({0, 2, 2}, 8).find("dp must be at least 1"), std::string::npos);
}

TEST(MeshShapeCheck, ABadShapeFailsEveryRankBeforeAnySplit) {
  std::vector<std::string> seen(4);
  run_inproc_group(4, options(), [&](comm::Communicator& world) {
    try {
      DeviceMesh mesh(world, MeshShape{1, 2, 3});
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      seen[world.rank()] = e.what();
    }
    world.barrier().wait();  // still in step
  });
  for (const auto& m : seen) EXPECT_NE(m.find("set pp to 2"), std::string::npos) << m;
}

TEST(MeshShapeCheck, RanksThatDisagreeAllFailNamingBothShapes) {
  std::vector<std::string> seen(4);
  run_inproc_group(4, options(), [&](comm::Communicator& world) {
    MeshShape s = world.rank() == 3 ? MeshShape{1, 4, 1} : MeshShape{1, 2, 2};
    try {
      DeviceMesh mesh(world, s);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      seen[world.rank()] = e.what();
    }
  });
  for (const auto& m : seen) {
    EXPECT_NE(m.find("dp 1 x tp 2 x pp 2"), std::string::npos) << m;
    EXPECT_NE(m.find("dp 1 x tp 4 x pp 1"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace weft::testing
