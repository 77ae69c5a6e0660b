// The coordinator over TLS (weft-coordinator and weftrun --tls-cert/--tls-key/--tls-ca; ranks
// with WEFT_TLS_CA, WEFT_TLS_CERT, WEFT_TLS_KEY): a throwaway CA and certificates made with the
// openssl command; ranks that trust the CA (and, under mutual TLS, present a certificate it
// signed) meet and allreduce; a plain client, and under mutual TLS a client without a
// certificate, are refused with a message naming the TLS variables within the connect deadline.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "tests/integration/weftrun_harness.h"

namespace weft::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kToken = "coordinator-tls-test-token";

class CoordinatorTls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v openssl > /dev/null 2>&1") != 0)
      GTEST_SKIP() << "needs the openssl command (Debian's openssl package) to make certificates";
    char tmpl[] = "/tmp/weft-tls-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // EC keys: quick to make. The server's certificate names 127.0.0.1 and localhost, where the
    // ranks connect; the client's is signed by the same CA.
    const std::string d = dir_.string();
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "set -e; cd " + d + "; exec 2> openssl.log;"
        "openssl req -x509" + key + " -keyout ca.key -out ca.pem -days 1 -subj /CN=weft-test-ca;"
        "openssl req" + key + " -keyout server.key -out server.csr -subj /CN=127.0.0.1;"
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n'"
        " > server.ext;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
        " -extfile server.ext -out server.pem;"
        "openssl req" + key + " -keyout client.key -out client.csr -subj /CN=weft-rank;"
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
        " -extfile client.ext -out client.pem";
    ASSERT_EQ(std::system(("sh -c '" + std::regex_replace(script, std::regex("'"), "'\\''") +
                           "'").c_str()),
              0)
        << "openssl failed; see " << d << "/openssl.log";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // weft-coordinator with TLS (mutual when `mutual`); its address.
  std::string start_coordinator(bool mutual) {
    std::vector<std::string> args = {"--port", "0", "--tls-cert", file("server.pem"),
                                     "--tls-key", file("server.key")};
    if (mutual) args.insert(args.end(), {"--tls-ca", file("ca.pem")});
    coordinator_ = std::make_unique<WeftrunProcess>(
        Program{WEFT_COORDINATOR_PATH}, args, "", std::vector<std::string>{"WEFT_TOKEN=" + kToken});
    EXPECT_TRUE(coordinator_->wait_for_stdout("listening on", 1, 20s)) << coordinator_->out()
                                                                       << coordinator_->err();
    std::smatch m;
    std::string out = coordinator_->out();
    EXPECT_TRUE(std::regex_search(out, m, std::regex(R"(listening on (127\.0\.0\.1:\d+) )")))
        << out;
    EXPECT_TRUE(contains(out, mutual ? "mutual TLS" : "TLS")) << out;
    return m.size() > 1 ? m[1].str() : "";
  }

  // Rank `rank` of 2, started by hand (as on another machine), with `tls_env` on top.
  std::unique_ptr<WeftrunProcess> start_rank(int rank, const std::string& addr,
                                             std::vector<std::string> tls_env) {
    std::vector<std::string> env = {"RANK=" + std::to_string(rank), "WORLD_SIZE=2",
                                    "LOCAL_RANK=" + std::to_string(rank), "LOCAL_WORLD_SIZE=2",
                                    "WEFT_STORE_ADDR=" + addr, "WEFT_TOKEN=" + kToken,
                                    "WEFT_BACKEND=tcp", "WEFT_TIMEOUT=4"};
    // The TLS variables not given are cleared, whatever the test's own environment holds.
    for (const std::string name : {"WEFT_TLS_CA=", "WEFT_TLS_CERT=", "WEFT_TLS_KEY="}) {
      bool given = false;
      for (const std::string& e : tls_env) given = given || e.rfind(name, 0) == 0;
      if (!given) env.push_back(name);
    }
    env.insert(env.end(), tls_env.begin(), tls_env.end());
    return std::make_unique<WeftrunProcess>(Program{WEFTRUN_RANK_HELPER_PATH},
                                            std::vector<std::string>{"allreduce"}, "", env);
  }

  std::vector<std::string> client_cert() const {
    return {"WEFT_TLS_CERT=" + file("client.pem"), "WEFT_TLS_KEY=" + file("client.key")};
  }

  void expect_allreduce(const std::string& addr, const std::vector<std::string>& tls_env) {
    auto rank0 = start_rank(0, addr, tls_env);
    auto rank1 = start_rank(1, addr, tls_env);
    WeftrunResult r0 = rank0->finish(60s), r1 = rank1->finish(60s);
    EXPECT_EQ(r0.exit_code, 0) << r0.out << r0.err;
    EXPECT_EQ(r1.exit_code, 0) << r1.out << r1.err;
    EXPECT_TRUE(contains(r0.out, "rank 0 allreduce 3 over tcp")) << r0.out << r0.err;
    EXPECT_TRUE(contains(r1.out, "rank 1 allreduce 3 over tcp")) << r1.out << r1.err;
  }

  // A rank that cannot speak to the coordinator fails (not hangs) by its connect deadline
  // (WEFT_TIMEOUT=4), saying what to check.
  void expect_refused(const std::string& addr, const std::vector<std::string>& tls_env,
                      const std::string& hint) {
    WeftrunResult r = start_rank(0, addr, tls_env)->finish(30s);
    EXPECT_FALSE(r.timed_out);
    EXPECT_NE(r.exit_code, 0) << r.out << r.err;
    EXPECT_LT(r.seconds, 15) << r.err;
    EXPECT_TRUE(contains(r.err, hint)) << r.err;
    EXPECT_FALSE(contains(r.out, "allreduce 3")) << r.out;
  }

  void stop_coordinator() {
    coordinator_->send_signal(SIGTERM);
    WeftrunResult c = coordinator_->finish(20s);
    EXPECT_EQ(c.exit_code, 0) << c.err;
  }

  fs::path dir_;
  std::unique_ptr<WeftrunProcess> coordinator_;
};

TEST_F(CoordinatorTls, ServesRanksThatTrustItsCaAndRefusesPlainClients) {
  const std::string addr = start_coordinator(/*mutual=*/false);
  ASSERT_FALSE(addr.empty());
  expect_allreduce(addr, {"WEFT_TLS_CA=" + file("ca.pem")});
  expect_refused(addr, {}, "set WEFT_TLS_CA");
  stop_coordinator();
}

TEST_F(CoordinatorTls, MutualTlsRefusesAClientWithoutACertificate) {
  const std::string addr = start_coordinator(/*mutual=*/true);
  ASSERT_FALSE(addr.empty());
  std::vector<std::string> with_cert = client_cert();
  with_cert.push_back("WEFT_TLS_CA=" + file("ca.pem"));
  expect_allreduce(addr, with_cert);
  expect_refused(addr, {"WEFT_TLS_CA=" + file("ca.pem")}, "WEFT_TLS_CERT and WEFT_TLS_KEY");
  expect_refused(addr, {}, "set WEFT_TLS_CA");
  stop_coordinator();
}

TEST_F(CoordinatorTls, MissingFilesAreNamed) {
  WeftrunResult r = WeftrunProcess(Program{WEFT_COORDINATOR_PATH},
                                   {"--port", "0", "--tls-cert", file("absent.pem"), "--tls-key",
                                    file("server.key")},
                                   "", {"WEFT_TOKEN=" + kToken})
                        .finish(20s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "--tls-cert " + file("absent.pem") + ": cannot read it")) << r.err;

  WeftrunResult half = WeftrunProcess(Program{WEFT_COORDINATOR_PATH},
                                      {"--port", "0", "--tls-cert", file("server.pem")}, "",
                                      {"WEFT_TOKEN=" + kToken})
                           .finish(20s);
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_TRUE(contains(half.err, "--tls-cert needs --tls-key")) << half.err;

  const std::string addr = start_coordinator(/*mutual=*/false);
  ASSERT_FALSE(addr.empty());
  expect_refused(addr, {"WEFT_TLS_CA=" + file("no-such-ca.pem")},
                 "WEFT_TLS_CA " + file("no-such-ca.pem") + ": cannot read it");
  stop_coordinator();
}

// weftrun serving its job's coordinator over mutual TLS: its 2 ranks (trusting the CA from the
// environment they inherit, with a client certificate) meet and allreduce.
TEST_F(CoordinatorTls, WeftrunJobOverMutualTls) {
  std::vector<std::string> env = client_cert();
  env.push_back("WEFT_TLS_CA=" + file("ca.pem"));
  WeftrunResult r = run_weftrun({"-n", "2", "--backend", "tcp", "--tls-cert", file("server.pem"),
                                 "--tls-key", file("server.key"), "--tls-ca", file("ca.pem"),
                                 "--", WEFTRUN_RANK_HELPER_PATH, "allreduce"},
                                "", env);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "rank 0 allreduce 3 over tcp")) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "rank 1 allreduce 3 over tcp")) << r.out << r.err;

  // Without the CA in the environment its ranks could not connect: weftrun says so at once.
  WeftrunResult no_ca = run_weftrun({"-n", "2", "--tls-cert", file("server.pem"), "--tls-key",
                                     file("server.key"), "--", WEFTRUN_RANK_HELPER_PATH,
                                     "allreduce"},
                                    "", {"WEFT_TLS_CA="});
  EXPECT_EQ(no_ca.exit_code, 2) << no_ca.err;
  EXPECT_TRUE(contains(no_ca.err, "WEFT_TLS_CA is not set")) << no_ca.err;
}

}  // namespace
}  // namespace weft::testing
