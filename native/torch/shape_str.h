// SPDX-License-Identifier: MIT
// A tensor shape as error messages print it: "[8,4096]" (the LLaMA core) or "[8, 4096]" (control policies).
#pragma once
#include <ATen/ATen.h>

#include <sstream>
#include <string>

namespace soup {

inline std::string ShapeStr(at::IntArrayRef s, const char* sep = ",") {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); i++) o << (i ? sep : "") << s[i];
  o << "]";
  return o.str();
}

}  // namespace soup
