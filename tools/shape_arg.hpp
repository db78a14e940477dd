// shape_arg.hpp — parsing a --shape value such as "32,256,14,14" (or "32x256x14x14"), and
// the strict integer / real parsing every other numeric option uses.
// Every malformed value is refused with a normkit::Error naming it, before any work starts.
#pragma once

#include <cstdint>
#include <string>

#include "normkit/tensor.hpp"

// Sizes must be integers >= 1 whose product fits in int64. `op` names the command in errors.
normkit::Shape parse_shape(const std::string& text, const char* op);

// A whole integer in [lo, hi] ("12", "-3"): non-numbers, trailing text ("3.5", "1e9") and
// values beyond int64 or the range are errors naming the option and the text, e.g.
// "[guide] --batch='99999999999999999999' does not fit in int64".
int64_t parse_int_arg(const std::string& text, const char* op, const char* option,
                      int64_t lo = INT64_MIN, int64_t hi = INT64_MAX);
// A real number ("0.4", "1e-3", "nan", "inf"); range checks are the caller's.
double parse_real_arg(const std::string& text, const char* op, const char* option);
