#pragma once
// TLS for the coordinator's gRPC connections: the server's credentials from its --tls-* files
// (CoordinatorOptions::tls), a rank's from WEFT_TLS_CA, WEFT_TLS_CERT and WEFT_TLS_KEY. Only the
// coordinator's own files use this header (it pulls in gRPC); the files' contents are never
// logged, only their paths.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "comm/rendezvous/coordinator.h"

namespace weft::comm {

// Plain when `tls` has no certificate; TLS otherwise, requiring and verifying a client
// certificate signed by tls.ca when one is given (mutual TLS).
std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsFiles& tls);

// What a rank connects with: TLS trusting WEFT_TLS_CA when it is set (presenting WEFT_TLS_CERT
// and WEFT_TLS_KEY when those are), plain otherwise.
struct ClientCredentials {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  bool tls = false;
};
ClientCredentials client_credentials_from_env();

}  // namespace weft::comm
