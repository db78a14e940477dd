// table.hpp — aligned plain-text tables and number formatting for the CLI.
// ASCII only, so the output reads the same in a terminal, a CI log or a README.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // Columns listed here are right-aligned (numbers); the rest are left-aligned.
  Table& right_align(std::vector<size_t> columns);
  void add(std::vector<std::string> row);
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// printf-style "%.*f" / "%.*e" into a std::string.
std::string fixed(double value, int digits);
std::string sci(double value, int digits);
