#pragma once

namespace butler {

/// Returns the version of this build, e.g. "0.1.0".
const char* version();

} // namespace butler
