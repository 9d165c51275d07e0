#pragma once

// The connection options of a Qlik Sense service (QRS or Engine), which
// share their fields, from its config section (Butler.configQRS,
// Butler.configEngine) and Butler.cert.

#include "config/butler_config.hpp"

namespace butler {

template <class Options, class Section>
Options sense_options_of(const Section& service, const sense_cert_config& cert) {
  Options opts;
  opts.host = service.host;
  opts.port = service.port;
  opts.use_ssl = service.use_ssl;
  opts.client_cert = cert.client_cert;
  opts.client_key = cert.client_cert_key;
  opts.ca_file = cert.client_cert_ca;
  opts.verify_peer = service.reject_unauthorized;
  opts.headers = service.headers;
  opts.timeout = service.timeout;
  return opts;
}

} // namespace butler
