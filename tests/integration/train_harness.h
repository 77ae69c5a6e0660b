#pragma once
// What the weft-train end-to-end tests share (tests/integration/train_test.cc on CPU,
// tests/gpu/train_cuda_test.cc on a GPU): a scratch directory, running weft-train under
// weftrun, and reading the losses back from its JSON log.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/weftrun_harness.h"

namespace weft::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Args = std::vector<std::string>;

inline std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// The first line of weft-train's output: the run's shape (model, ranks, layout, threads).
inline std::string first_line(const std::string& out) {
  std::vector<std::string> lines = lines_of(out);
  return lines.empty() ? "" : lines[0];
}

class Train : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weft-train-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `weftrun -n ranks [weftrun_flags...] -- weft-train flags...` to the end, with `env`
  // ("NAME=value") added to the test's environment; past `timeout` the job is killed.
  WeftrunResult train(int ranks, const Args& flags, const Args& env = {},
                      const Args& weftrun_flags = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    Args args = {"-n", std::to_string(ranks)};
    args.insert(args.end(), weftrun_flags.begin(), weftrun_flags.end());
    args.insert(args.end(), {"--", WEFT_TRAIN_PATH});
    args.insert(args.end(), flags.begin(), flags.end());
    WeftrunProcess p(args, "", env);
    return p.finish(timeout);
  }

  // The "loss" of every step record in a JSON log, in order.
  std::vector<double> losses(const std::string& log) { return values(log, "loss"); }

  // The field `key` of every record of a JSON log that has it, in order.
  std::vector<double> values(const std::string& log, const std::string& key) {
    std::vector<double> out;
    std::ifstream in(dir_ / log);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains(key)) out.push_back(j[key]);
    }
    return out;
  }

  fs::path dir_;
};

}  // namespace weft::testing
