#include "act_name.h"

#include <stdexcept>

namespace pynas {

const char* const kActNames[5] = {"none", "re", "r6", "hs", "sw"};

Act parse_act(const std::string& name) {
  for (int i = 0; i < 5; ++i)
    if (name == kActNames[i]) return static_cast<Act>(i);
  throw std::invalid_argument("act: expected one of none, re, r6, hs, sw, got '" + name + "'");
}

}  // namespace pynas
