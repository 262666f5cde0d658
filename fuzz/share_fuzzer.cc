// Copyright 2026 The herd Authors.
//
// fuzz/share_fuzzer.cc: libFuzzer target for herd::Share. The input's bytes
// make the choices of one episode of tests/testing/share_model.h: the
// Share's options, then each call (Do, DoFor, DoAsync on a scripted
// executor, Forget, AllowExtraExecution, Cancel, CancelAll, tasks run or
// dropped, time moving on, nested calls from loaders). Every call is
// checked against the model of herd/share.h; a mismatch prints the calls
// that led to it and aborts, and AddressSanitizer catches the rest.
//
// Built by clang with -fsanitize=fuzzer,address when HERD_BUILD_FUZZERS is
// ON (fuzz/CMakeLists.txt); `scripts/test.sh fuzz` runs it for a bounded
// time from the committed corpus, fuzz/corpus/share/.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tests/testing/share_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t pos = 0;
  // A choice in [0, n) from the next byte (two bytes past 256); 0 once the
  // input is used up, which winds the episode down.
  const herd::test::ShareModel::Chooser choose = [&](uint32_t n) -> uint32_t {
    if (n <= 1 || pos >= size) return 0;
    uint32_t x = data[pos++];
    if (n > 256 && pos < size) x = x << 8 | data[pos++];
    return x % n;
  };
  herd::test::ShareModel model(choose,
                               herd::test::ShareModel::DrawConfig(choose));
  while (pos < size && model.Step()) {
  }
  model.Finish();
  if (!model.failure().empty()) {
    std::fprintf(stderr, "share_fuzzer: %s\n", model.failure().c_str());
    std::abort();
  }
  return 0;
}
