// Copyright 2026 The herd Authors.
//
// herd::herd_redis alone (lib/redis/*.cc, hiredis): a Fleet whose Redis is
// not there serves every call by a local load, and its metrics say so.

#include <chrono>
#include <string>

#include "consumer.h"
#include "herd/redis/fleet.h"
#include "herd/redis/tier.h"

int main() {
  herd::redis::FleetOptions options;
  options.host = "127.0.0.1";
  options.port = 1;  // nothing listens there: every connect is refused
  options.connect_timeout = std::chrono::milliseconds(100);
  herd::redis::Fleet fleet(options);
  herd::redis::Tier<std::string, std::string> tier(
      fleet, {.name = "consumer"},
      [](const std::string& key) { return "value of " + key; });
  const herd::redis::Loaded<std::string> got = tier.Fetch("k");
  consumer::Check(got.value == "value of k", "the loader's value");
  consumer::Check(got.source == herd::redis::Source::kLocal, "a fallback");
  consumer::Check(fleet.Stats().fallbacks == 1, "one fallback counted");
  consumer::Check(herd::redis::FormatMetrics(fleet.Stats()).find(
                      "herd_redis_fallbacks_total 1") != std::string::npos,
                  "the metrics snapshot");
  return consumer::Finish("herd_consumer_herd_redis");
}
