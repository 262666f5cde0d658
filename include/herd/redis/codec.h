// Copyright 2026 The herd Authors.
//
// herd/redis/codec.h: how values and keys cross process boundaries.
//
//   herd::redis::Codec<T>      a Value as bytes and back: built in for
//                              std::string and trivially copyable types
//   herd::redis::KeyCodec<K>   a Key as the tail of a Redis key and back:
//                              built in for strings, integers and trivially
//                              copyable types
//   herd::redis::Fingerprint() the 64-bit checksum stored beside each payload
//
// Example: a codec for a type of your own, found by herd::redis::Tier and
// herd::redis::FleetCache through specialization:
//
//   template <>
//   struct herd::redis::Codec<User> {
//     static std::string Tag() { return "User/v2"; }   // changes with the format
//     static void Encode(const User& u, std::string& out) { out += u.Serialize(); }
//     static std::optional<User> Decode(std::string_view bytes) {
//       return User::Parse(bytes);  // nullopt for anything that is not a User
//     }
//   };
//
// A codec's contract:
//   Tag()     names the format. Stored with every value; a reader whose
//             codec has another tag treats the value as foreign (a decode
//             error: counted, treated as a miss, reloaded).
//   Encode()  appends the bytes of `value` to `out`. May throw (the value is
//             then returned to the callers but not stored in Redis).
//   Decode()  returns the value, or nullopt for bytes it does not accept. It
//             must accept any input without undefined behaviour: the bytes
//             come from another process, or from anyone who can write to
//             Redis.
// Every stored payload also carries its length and its Fingerprint(), checked
// before Decode() is called, so truncated or altered bytes are caught even by
// a codec that accepts every byte string (std::string's).
//
// The built-in codec for a trivially copyable T copies T's object
// representation; its tag holds sizeof(T) and T's mangled name, so another
// type (or the same type from a build where its size differs) is foreign.
// It is sound for types in which every byte pattern is a value: integers,
// floating point, arrays and structs of them, enums with a fixed underlying
// type. A bool is checked (0 or 1). For a struct holding a bool, or an enum
// without a fixed underlying type, write a codec: a payload that passes the
// checksum but was crafted to hold another byte there would not be a value.
// Pointers are refused at compile time (an address means nothing in another
// process). All processes must share one byte order (the tag does not say).
//
// Thread safety: stateless.

#ifndef HERD_REDIS_CODEC_H_
#define HERD_REDIS_CODEC_H_

#include <array>
#include <bit>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

namespace herd::redis {

// FNV-1a, 64 bits: the checksum stored with every payload. Not a
// cryptographic hash: it catches corruption, not forgery.
constexpr uint64_t Fingerprint(std::string_view bytes) noexcept {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// The codec of a Value. Specialize it for your types (see above).
template <class T, class Enable = void>
struct Codec;

template <>
struct Codec<std::string> {
  static std::string Tag() { return "std::string"; }
  static void Encode(const std::string& value, std::string& out) {
    out += value;
  }
  static std::optional<std::string> Decode(std::string_view bytes) {
    return std::string(bytes);
  }
};

template <class T>
struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T> &&
                                 !std::is_pointer_v<T> &&
                                 !std::is_member_pointer_v<T> &&
                                 !std::is_same_v<T, std::string>>> {
  static std::string Tag() {
    return "bytes/" + std::to_string(sizeof(T)) + "/" + typeid(T).name();
  }
  static void Encode(const T& value, std::string& out) {
    // unsigned char: the only element type (with std::byte) that std::bit_cast
    // may fill from T's padding bytes, which are indeterminate.
    const auto bytes =
        std::bit_cast<std::array<unsigned char, sizeof(T)>>(value);
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  static std::optional<T> Decode(std::string_view bytes) {
    if (bytes.size() != sizeof(T)) return std::nullopt;
    std::array<unsigned char, sizeof(T)> raw;
    std::memcpy(raw.data(), bytes.data(), sizeof(T));
    if constexpr (std::is_same_v<std::remove_cv_t<T>, bool>) {
      if (raw[0] != 0 && raw[0] != 1) return std::nullopt;
    }
    return std::bit_cast<T>(raw);
  }
};

// The codec of a Key: its text inside a Redis key, and back (a process
// that receives an invalidation turns the Redis key into a Key again).
// Encode must be injective; Decode(Encode(k)) == k.
template <class K, class Enable = void>
struct KeyCodec;

template <>
struct KeyCodec<std::string> {
  static void Encode(const std::string& key, std::string& out) { out += key; }
  static std::optional<std::string> Decode(std::string_view text) {
    return std::string(text);
  }
};

// Integers as decimal text, so that Redis keys stay readable.
template <std::integral K>
  requires(!std::is_same_v<std::remove_cv_t<K>, bool>)
struct KeyCodec<K> {
  static void Encode(const K& key, std::string& out) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, key);
    out.append(buf, end);
  }
  static std::optional<K> Decode(std::string_view text) {
    K key{};
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, key);
    if (text.empty() || ec != std::errc() || p != end) return std::nullopt;
    return key;
  }
};

// Any other trivially copyable key (not a pointer): its bytes in hex.
template <class K>
struct KeyCodec<K, std::enable_if_t<std::is_trivially_copyable_v<K> &&
                                    !std::is_integral_v<K> &&
                                    !std::is_pointer_v<K> &&
                                    !std::is_member_pointer_v<K>>> {
  static void Encode(const K& key, std::string& out) {
    static constexpr char kHex[] = "0123456789abcdef";
    const auto bytes = std::bit_cast<std::array<unsigned char, sizeof(K)>>(key);
    for (const unsigned char b : bytes) {
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  static std::optional<K> Decode(std::string_view text) {
    if (text.size() != 2 * sizeof(K)) return std::nullopt;
    std::array<unsigned char, sizeof(K)> bytes;
    for (size_t i = 0; i < sizeof(K); ++i) {
      unsigned value = 0;
      auto [p, ec] = std::from_chars(text.data() + 2 * i,
                                     text.data() + 2 * i + 2, value, 16);
      if (ec != std::errc() || p != text.data() + 2 * i + 2) {
        return std::nullopt;
      }
      bytes[i] = static_cast<unsigned char>(value);
    }
    return std::bit_cast<K>(bytes);
  }
};

}  // namespace herd::redis

#endif  // HERD_REDIS_CODEC_H_
