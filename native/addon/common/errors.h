// SPDX-License-Identifier: MIT
// The error vocabulary of both addons' bindings: "[ERR_SOUP_*] message" strings, which src/errors.ts
// maps to SoupError codes. Argument errors are thrown on the JS thread as TypeErrors; work on other
// threads turns every exception into such a string (RunCaught), so none crosses into the JS engine.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

namespace soup::addon {

// An argument that JS should not have passed: a TypeError that names the field.
[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& m) { throw Napi::TypeError::New(env, "[ERR_SOUP_INVALID_ARG] " + m); }

// A message as it reaches JS: native code that knows the cause prefixes its code; anything else is internal.
inline std::string SoupMessage(const std::string& m) { return m.rfind("[ERR_SOUP_", 0) == 0 ? m : "[ERR_SOUP_INTERNAL] " + m; }

// What an exception says, as SoupMessage. Defined once per addon that uses it: the torch addon's
// (addon_torch.cc) drops libtorch's C++ backtrace and names libtorch (c10::Error).
std::string MessageOf(const std::exception& e);

// Runs work off the JS thread; any exception becomes the message it reports ("" when none).
template <typename F>
std::string RunCaught(F&& work) {
  try {
    work();
    return "";
  } catch (const std::exception& err) {
    return MessageOf(err);
  } catch (...) {
    return "[ERR_SOUP_INTERNAL] unknown native error";
  }
}

}  // namespace soup::addon
