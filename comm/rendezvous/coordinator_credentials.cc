#include "comm/rendezvous/coordinator_credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/env.h"
#include "runtime/error.h"

namespace weft::comm {
namespace {

// The whole of a PEM file; `origin` (a flag or variable) says where its path came from.
std::string read_pem(const std::string& path, const std::string& origin) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(ErrorCode::InvalidArgument,
                origin + " " + path + ": cannot read it (" + std::strerror(errno) +
                    "); give the path of a PEM file this user can read");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos)
    throw Error(ErrorCode::InvalidArgument,
                origin + " " + path + ": not a PEM file (no -----BEGIN line)");
  return text.str();
}

}  // namespace

std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsFiles& tls) {
  if (tls.cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_key_cert_pairs.push_back(
      {read_pem(tls.key, "--tls-key"), read_pem(tls.cert, "--tls-cert")});
  if (!tls.ca.empty()) options.pem_root_certs = read_pem(tls.ca, "--tls-ca");
  return grpc::SslServerCredentials(options);
}

ClientCredentials client_credentials_from_env() {
  const std::string ca = env::get("WEFT_TLS_CA");
  const std::string cert = env::get("WEFT_TLS_CERT");
  const std::string key = env::get("WEFT_TLS_KEY");
  if (ca.empty()) {
    if (!cert.empty() || !key.empty())
      throw Error(ErrorCode::InvalidArgument,
                  "WEFT_TLS_CERT and WEFT_TLS_KEY are set but WEFT_TLS_CA is not: set WEFT_TLS_CA "
                  "to the CA that signed the coordinator's certificate (it turns TLS on)");
    return {grpc::InsecureChannelCredentials(), false};
  }
  if (cert.empty() != key.empty())
    throw Error(ErrorCode::InvalidArgument,
                std::string(cert.empty() ? "WEFT_TLS_KEY" : "WEFT_TLS_CERT") + " is set without " +
                    (cert.empty() ? "WEFT_TLS_CERT" : "WEFT_TLS_KEY") +
                    ": mutual TLS needs both the client certificate and its key");
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = read_pem(ca, "WEFT_TLS_CA");
  if (!cert.empty()) {
    options.pem_cert_chain = read_pem(cert, "WEFT_TLS_CERT");
    options.pem_private_key = read_pem(key, "WEFT_TLS_KEY");
  }
  return {grpc::SslCredentials(options), true};
}

}  // namespace weft::comm
