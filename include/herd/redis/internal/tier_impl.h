// Copyright 2026 The herd Authors.
//
// herd/redis/internal/tier_impl.h: the definitions of herd/redis/tier.h.

#ifndef HERD_REDIS_INTERNAL_TIER_IMPL_H_
#define HERD_REDIS_INTERNAL_TIER_IMPL_H_

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <utility>

namespace herd::redis {

namespace internal {

template <class Options>
const Options& CheckedTierOptions(const Options& o) {
  auto fail = [](const char* what) {
    throw std::invalid_argument(std::string("herd::redis::Tier: ") + what);
  };
  // Redis keys are <prefix><name>:v:<key>: a ':' in a name would let two
  // tiers' keys meet (name "a", key "b:v:c" and name "a:v:b", key "c").
  if (o.name.find(':') != std::string::npos) fail("name contains ':'");
  if (o.ttl < std::chrono::nanoseconds::zero()) fail("ttl < 0");
  if (o.refresh_after < std::chrono::nanoseconds::zero()) {
    fail("refresh_after < 0");
  }
  if (o.ttl > std::chrono::nanoseconds::zero() &&
      o.refresh_after >= o.ttl) {
    fail("refresh_after >= ttl");
  }
  if (!(o.early_refresh_beta >= 0) || !std::isfinite(o.early_refresh_beta)) {
    fail("early_refresh_beta must be >= 0 and finite");
  }
  return o;
}

}  // namespace internal

template <class Key, class Value, class ValueCodec, class KeyCodecT>
template <class L>
Tier<Key, Value, ValueCodec, KeyCodecT>::Tier(Fleet& fleet, Options options,
                                              L loader)
    : fleet_(fleet),
      options_(std::move(internal::CheckedTierOptions(options))),
      loader_([&]() -> Loader {
        if (herd::internal::IsEmptyLoader(loader)) {
          throw std::invalid_argument("herd::redis::Tier: empty loader");
        }
        return Loader(std::move(loader));
      }()),
      policy_{Fingerprint(ValueCodec::Tag()), options_.refresh_after,
              options_.early_refresh_beta} {}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
Tier<Key, Value, ValueCodec, KeyCodecT>::~Tier() {
  tasks_.WaitForZero();
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
KeyRef Tier<Key, Value, ValueCodec, KeyCodecT>::RedisKeys(
    const Key& key) const {
  std::string encoded;
  KeyCodecT::Encode(key, encoded);
  return fleet_.KeysFor(options_.name, encoded);
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
std::chrono::nanoseconds Tier<Key, Value, ValueCodec, KeyCodecT>::TtlFor(
    const Key& key, const Value& value) const {
  if (options_.expire_after) return options_.expire_after(key, value);
  return options_.ttl > std::chrono::nanoseconds::zero()
             ? options_.ttl
             : std::chrono::nanoseconds::max();
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
std::optional<Payload> Tier<Key, Value, ValueCodec, KeyCodecT>::LoadPayload(
    const Key& key, std::optional<Value>& value, bool store,
    std::optional<std::chrono::nanoseconds>* unstored_ttl) const {
  value.emplace(loader_(key));  // the loader's exception goes to the caller
  Payload payload;
  payload.ttl = TtlFor(key, *value);
  if (!store) return payload;
  try {
    ValueCodec::Encode(*value, payload.bytes);
  } catch (...) {
    // Returned to the callers, not stored: it expires as if it had been.
    if (unstored_ttl != nullptr) *unstored_ttl = payload.ttl;
    return std::nullopt;
  }
  return payload;
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
Loaded<Value> Tier<Key, Value, ValueCodec, KeyCodecT>::Fetch(const Key& key) {
  KeyRef keys = RedisKeys(key);
  std::optional<Value> value;
  std::optional<std::chrono::nanoseconds> unstored_ttl;
  const FetchResult r = fleet_.Fetch(
      keys, policy_,
      [&](std::string_view bytes) {
        std::optional<Value> decoded = ValueCodec::Decode(bytes);
        if (!decoded) return false;
        value = std::move(decoded);
        return true;
      },
      [&](bool store) {
        return LoadPayload(key, value, store, &unstored_ttl);
      });
  if (!r.refresh_token.empty()) {
    StartRefresh(key, std::move(keys), r.refresh_token);
  }
  Loaded<Value> out{std::move(*value)};
  out.source = r.source;
  out.stale = r.stale;
  out.age = r.age;
  out.expires_in = unstored_ttl ? *unstored_ttl : r.expires_in;
  out.fresh_for = out.expires_in;
  if (options_.refresh_after > std::chrono::nanoseconds::zero()) {
    out.fresh_for = std::min(
        out.fresh_for, std::max(std::chrono::nanoseconds::zero(),
                                options_.refresh_after - r.age));
  }
  out.fresh_for = std::max(out.fresh_for, std::chrono::nanoseconds::zero());
  return out;
}

// A background refresh: loads under the lease Fetch() won, and writes.
template <class Key, class Value, class ValueCodec, class KeyCodecT>
struct Tier<Key, Value, ValueCodec, KeyCodecT>::RefreshTask {
  const Tier* tier;
  Key key;
  KeyRef keys;
  std::string token;

  void Run() noexcept {
    try {
      std::optional<Value> value;
      tier->fleet_.Refresh(keys, tier->policy_.tag, token, [&](bool store) {
        return tier->LoadPayload(key, value, store);
      });
    } catch (...) {
      // A failed refresh leaves the stale value; the lease was released,
      // so the next reader past refresh_after tries again.
    }
  }
  void Abandon(std::exception_ptr) noexcept {
    try {
      tier->fleet_.Release(keys, token);
    } catch (...) {
    }
  }
};

template <class Key, class Value, class ValueCodec, class KeyCodecT>
void Tier<Key, Value, ValueCodec, KeyCodecT>::StartRefresh(const Key& key,
                                                           KeyRef keys,
                                                           std::string token) {
  ExecutorRef executor =
      options_.executor ? options_.executor : fleet_.background();
  try {
    RefreshTask task{this, key, keys, token};
    herd::internal::ScheduleOnce(executor, &tasks_, std::move(task));
  } catch (...) {
    // The executor refused it (Abandon released the lease), or there was no
    // memory to build the task: give the lease back, and serve the value.
    try {
      fleet_.Release(keys, token);
    } catch (...) {
    }
  }
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
bool Tier<Key, Value, ValueCodec, KeyCodecT>::Put(const Key& key,
                                                  const Value& value) {
  Payload payload;
  payload.ttl = TtlFor(key, value);
  ValueCodec::Encode(value, payload.bytes);
  return fleet_.Put(RedisKeys(key), policy_.tag, payload);
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
bool Tier<Key, Value, ValueCodec, KeyCodecT>::Invalidate(const Key& key) {
  return fleet_.Invalidate(RedisKeys(key));
}

template <class Key, class Value, class ValueCodec, class KeyCodecT>
std::unique_ptr<Fleet::Listener> Tier<Key, Value, ValueCodec, KeyCodecT>::Listen(
    std::function<void(const Key&)> on_key, std::function<void()> on_resync) {
  return fleet_.Listen(
      options_.name,
      [on_key = std::move(on_key)](std::string_view encoded) {
        std::optional<Key> key = KeyCodecT::Decode(encoded);
        if (key && on_key) on_key(*key);
      },
      std::move(on_resync));
}

}  // namespace herd::redis

#endif  // HERD_REDIS_INTERNAL_TIER_IMPL_H_
