#include "comm/node_layout.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace weft::comm {
namespace {

// FNV-1a: stable across processes and builds (std::hash need not be).
uint64_t fnv1a(const std::string& text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Device and inode of `path` ("" when it cannot be read): the same file system mount, or
// namespace, has the same pair.
std::string identity_of(const char* path) {
  struct stat st {};
  if (::stat(path, &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

}  // namespace

uint64_t this_node_key(const World& w) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return fnv1a("node " + std::to_string(w.node_rank) + "|" + host + "|" +
               first_line("/proc/sys/kernel/random/boot_id") + "|" + identity_of("/dev/shm") + "|" +
               identity_of("/proc/self/ns/pid"));
}

std::vector<int> NodeLayout::leaders() const {
  std::vector<int> first;
  for (const auto& ranks : nodes) first.push_back(ranks.front());
  return first;
}

bool NodeLayout::hierarchical() const {
  return nodes.size() > 1 && std::any_of(nodes.begin(), nodes.end(),
                                         [](const auto& ranks) { return ranks.size() > 1; });
}

NodeLayout node_layout(std::span<const uint64_t> keys, int rank) {
  NodeLayout layout;
  std::vector<uint64_t> seen;  // the key of each node so far, in node order
  for (int r = 0; r < static_cast<int>(keys.size()); ++r) {
    const size_t node = std::find(seen.begin(), seen.end(), keys[r]) - seen.begin();
    if (node == seen.size()) {
      seen.push_back(keys[r]);
      layout.nodes.emplace_back();
    }
    if (r == rank) {
      layout.node = static_cast<int>(node);
      layout.local = static_cast<int>(layout.nodes[node].size());
    }
    layout.nodes[node].push_back(r);
  }
  return layout;
}

}  // namespace weft::comm
