// Checks of the certificate flags (--certmode letsencrypt and its --acme-* flags, the reload
// poll interval), kept beside the certificate code rather than in config.cc. Start-up only.
#pragma once

#include <string>

#include "lib/util/expected.h"
#include "relay/config.h"

namespace derpkit::relay {

// Checks the ACME and reload fields of `config` (cert_mode already checked) and fills the
// default challenge type. Returns one line for the operator.
Expected<void, std::string> ValidateAcme(RelayConfig& config);

}  // namespace derpkit::relay
