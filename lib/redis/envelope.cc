// Copyright 2026 The herd Authors.

#include "lib/redis/envelope.h"

#include <charconv>
#include <cstdio>
#include <system_error>

#include "herd/redis/codec.h"

namespace herd::redis::internal {
namespace {

// Reads the next field of `s` (up to `sep`), decimal or hex, into `out`.
// Advances `s` past the separator. Returns false on anything malformed.
bool Field(std::string_view& s, char sep, int base, uint64_t* out) {
  const size_t end = s.find(sep);
  if (end == 0 || end == std::string_view::npos || end > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + end, *out, base);
  if (ec != std::errc() || p != s.data() + end) return false;
  s.remove_prefix(end + 1);
  return true;
}

bool IsHex(std::string_view s) {
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !s.empty();
}

}  // namespace

std::string EnvelopeTail(std::string_view id, uint64_t load_us, uint64_t tag,
                         std::string_view payload) {
  char head[96];
  const int n = std::snprintf(
      head, sizeof head, " %llu %016llx %zu %016llx\n",
      static_cast<unsigned long long>(load_us),
      static_cast<unsigned long long>(tag), payload.size(),
      static_cast<unsigned long long>(Fingerprint(payload)));
  std::string tail;
  tail.reserve(id.size() + static_cast<size_t>(n) + payload.size());
  tail.append(id);
  tail.append(head, static_cast<size_t>(n));
  tail.append(payload);
  return tail;
}

bool ParseEnvelope(std::string_view s, Envelope* out) {
  if (s.substr(0, 3) != "H1 ") return false;
  s.remove_prefix(3);
  if (!Field(s, ' ', 10, &out->written_ms)) return false;
  const size_t id_end = s.find(' ');
  if (id_end == std::string_view::npos || id_end > 64) return false;
  out->id = s.substr(0, id_end);
  if (!IsHex(out->id)) return false;
  s.remove_prefix(id_end + 1);
  uint64_t len = 0, sum = 0;
  if (!Field(s, ' ', 10, &out->load_us) || !Field(s, ' ', 16, &out->tag) ||
      !Field(s, ' ', 10, &len) || !Field(s, '\n', 16, &sum)) {
    return false;
  }
  if (s.size() != len || Fingerprint(s) != sum) return false;
  out->payload = s;
  return true;
}

}  // namespace herd::redis::internal
