// Copyright 2026 The herd Authors.
//
// lib/redis/envelope.h: the string a value is stored as in Redis
// (lib/redis/scripts.h shows the format). The client builds everything after
// written_ms (WRITE / PUT put Redis's TIME in front) and parses the whole.

#ifndef HERD_LIB_REDIS_ENVELOPE_H_
#define HERD_LIB_REDIS_ENVELOPE_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace herd::redis::internal {

// What follows "H1 <written_ms> " in a stored value.
std::string EnvelopeTail(std::string_view id, uint64_t load_us, uint64_t tag,
                         std::string_view payload);

struct Envelope {
  uint64_t written_ms = 0;
  std::string_view id;  // the writer's token (hex)
  uint64_t load_us = 0;
  uint64_t tag = 0;
  std::string_view payload;
};

// Returns true iff `stored` is a well-formed envelope whose payload has the
// recorded length and checksum; fills `out` (views into `stored`). Never
// reads outside `stored`.
bool ParseEnvelope(std::string_view stored, Envelope* out);

}  // namespace herd::redis::internal

#endif  // HERD_LIB_REDIS_ENVELOPE_H_
