// Registered memory between two arenas of one process (ranks 0 and 1): a segment's fd reaches
// the peer, which maps the same pages; the index finds buffers inside segments only; a freed
// segment disappears from the peer; a segment outlives its arena; a connection from a process
// the peer does not expect is not heard.
#include "comm/transport/shm/shm_arena.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

namespace weft::comm::shm {
namespace {

struct Pair {
  ShmArena a{0, 2, "arena rank 0"};
  ShmArena b{1, 2, "arena rank 1"};
  // `pid_b_expects`: the pid rank 1 accepts rank 0's connection from.
  explicit Pair(int pid_b_expects = getpid()) {
    const std::string pa = a.listen("test-a"), pb = b.listen("test-b");
    a.connect(1, pb, getpid());
    b.connect(0, pa, pid_b_expects);
    a.unlink_path();
    b.unlink_path();
  }
};

TEST(ShmArena, PeerMapsTheSamePages) {
  Pair p;
  auto seg = p.a.allocate(10000);
  ASSERT_TRUE(seg->shared());
  EXPECT_EQ(seg->bytes(), 10000u);
  std::memset(seg->data(), 0x5a, 10000);
  std::byte* there = p.b.peer_segment(0, seg->id(), 10000);
  ASSERT_NE(there, nullptr);
  EXPECT_NE(there, seg->data());  // a mapping of its own
  EXPECT_EQ(there[9999], std::byte{0x5a});
  there[42] = std::byte{7};
  EXPECT_EQ(seg->data()[42], std::byte{7});
  EXPECT_EQ(p.b.peer_segment(0, seg->id(), 1 << 20), nullptr);  // longer than it is
  EXPECT_EQ(p.b.peer_segment(0, seg->id() + 1, 1), nullptr);    // never sent
}

TEST(ShmArena, FindsOnlyRangesInsideASegment) {
  Pair p;
  auto seg = p.a.allocate(4096);
  EXPECT_EQ(p.a.find(seg->data(), 4096), seg);
  EXPECT_EQ(p.a.find(seg->data() + 100, 200), seg);
  EXPECT_EQ(p.a.find(seg->data() + 100, 4096), nullptr);
  int local = 0;
  EXPECT_EQ(p.a.find(&local, sizeof local), nullptr);
}

TEST(ShmArena, FreedSegmentLeavesThePeer) {
  Pair p;
  auto seg = p.a.allocate(4096);
  const uint64_t id = seg->id();
  ASSERT_NE(p.b.peer_segment(0, id, 4096), nullptr);
  seg.reset();
  p.b.receive();
  EXPECT_EQ(p.b.peer_segment(0, id, 4096), nullptr);
  EXPECT_EQ(p.a.find(&id, 1), nullptr);
}

// A buffer may outlive its communicator: its memory stays usable, and freeing it later tells
// no one.
TEST(ShmArena, SegmentOutlivesItsArena) {
  std::shared_ptr<RegisteredSegment> seg;
  {
    Pair p;
    seg = p.a.allocate(4096);
  }
  std::memset(seg->data(), 1, 4096);
  EXPECT_EQ(seg->data()[4095], std::byte{1});
  seg.reset();
}

TEST(ShmArena, ConnectionFromAnotherProcessIsNotHeard) {
  Pair p(/*pid_b_expects=*/1);  // rank 1 believes rank 0 is pid 1: this process is a stranger
  auto seg = p.a.allocate(4096);
  EXPECT_EQ(p.b.peer_segment(0, seg->id(), 4096), nullptr);
}

}  // namespace
}  // namespace weft::comm::shm
