// Activation names as the architecture strings spell them, shared by the Python bindings and the
// op list parser of pynas-profile (so both accept exactly the same names).
#pragma once

#include <string>

#include "common.h"

namespace pynas {

// Names in Act's order: "none", "re" (ReLU), "r6" (ReLU6), "hs" (h-swish), "sw" (swish).
extern const char* const kActNames[5];

// The Act named `name`; std::invalid_argument "act: expected one of none, re, r6, hs, sw, got '..'".
Act parse_act(const std::string& name);

}  // namespace pynas
