// shape_arg.hpp — parsing a --shape value such as "32,256,14,14" (or "32x256x14x14").
// Every malformed value is refused with a normkit::Error naming it, before any work starts.
#pragma once

#include <string>

#include "normkit/tensor.hpp"

// Sizes must be integers >= 1 whose product fits in int64. `op` names the command in errors.
normkit::Shape parse_shape(const std::string& text, const char* op);
