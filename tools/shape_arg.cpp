// shape_arg.cpp — strict --shape parsing: empty entries ("3,,4"), non-numbers, sizes < 1,
// sizes beyond int64 and products that overflow int64 are all errors naming the bad entry.
// The same from_chars parsing serves the other integer and real options (never clamped).
#include "shape_arg.hpp"

#include <charconv>

normkit::Shape parse_shape(const std::string& text, const char* op) {
  const std::string where = std::string("[") + op + "] --shape='" + text + "'";
  if (text.empty()) throw normkit::Error(where + " is empty (expected sizes like 32,256,14,14)");
  normkit::Shape shape;
  int64_t product = 1;
  size_t begin = 0;
  for (int index = 1;; ++index) {
    size_t end = text.find_first_of(",x", begin);
    if (end == std::string::npos) end = text.size();
    const std::string entry = text.substr(begin, end - begin);
    const std::string which = where + ": entry " + std::to_string(index);
    if (entry.empty()) throw normkit::Error(which + " is empty (expected sizes like 32,256,14,14)");
    int64_t size = 0;
    const auto [ptr, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), size);
    if (ec == std::errc::result_out_of_range)
      throw normkit::Error(which + " size=" + entry + " does not fit in int64");
    if (ec != std::errc() || ptr != entry.data() + entry.size())
      throw normkit::Error(which + " '" + entry + "' is not an integer");
    if (size < 1) throw normkit::Error(which + " size=" + entry + " must be >= 1");
    if (__builtin_mul_overflow(product, size, &product))
      throw normkit::Error(where + ": the product of the sizes overflows int64");
    shape.push_back(size);
    if (end == text.size()) break;
    begin = end + 1;
  }
  return shape;
}

int64_t parse_int_arg(const std::string& text, const char* op, const char* option, int64_t lo, int64_t hi) {
  const std::string where = std::string("[") + op + "] " + option + "='" + text + "'";
  int64_t value = 0;
  const char* first = text.data() + (text.size() > 1 && text[0] == '+' ? 1 : 0);
  const auto [ptr, ec] = std::from_chars(first, text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) throw normkit::Error(where + " does not fit in int64");
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    throw normkit::Error(where + " is not an integer");
  if (value < lo || value > hi)
    throw normkit::Error(where + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return value;
}

double parse_real_arg(const std::string& text, const char* op, const char* option) {
  const std::string where = std::string("[") + op + "] " + option + "='" + text + "'";
  double value = 0;
  const char* first = text.data() + (text.size() > 1 && text[0] == '+' ? 1 : 0);
  const auto [ptr, ec] = std::from_chars(first, text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) throw normkit::Error(where + " is out of the range of a double");
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    throw normkit::Error(where + " is not a number");
  return value;
}
