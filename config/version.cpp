#include "config/version.hpp"

namespace butler {

const char* version() {
  return BUTLER_VERSION;
}

} // namespace butler
