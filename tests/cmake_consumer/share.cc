// Copyright 2026 The herd Authors.
//
// herd::share alone: Share and Coalesce, with Abseil's hash map under them.

#include <stdexcept>
#include <string>

#include "consumer.h"
#include "herd/coalesce.h"
#include "herd/share.h"

int main() {
  herd::Share<std::string, int> share;
  consumer::Check(share.Do("k", [] { return 42; }) == 42, "Share::Do");
  bool rethrown = false;
  try {
    share.Do("k", []() -> int { throw std::runtime_error("down"); });
  } catch (const std::runtime_error& e) {
    rethrown = std::string(e.what()) == "down";
  }
  consumer::Check(rethrown, "a loader's exception reaches the caller as is");
  consumer::Check(share.InFlight() == 0, "nothing left in flight");

  int calls = 0;
  auto twice = herd::Coalesce([&calls](int x) {
    ++calls;
    return 2 * x;
  });
  consumer::Check(twice(21) == 42 && calls == 1, "Coalesce");
  return consumer::Finish("herd_consumer_share");
}
