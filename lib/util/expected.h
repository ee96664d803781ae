// A small subset of C++23 std::expected with the same member names. GCC 12 in -std=c++20 has no
// <expected>; when the project moves to C++23 this becomes a using-alias.
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace derpkit {

template <typename E>
class Unexpected {
 public:
  constexpr explicit Unexpected(E e) : error_(std::move(e)) {}
  constexpr const E& error() const& { return error_; }
  constexpr E& error() & { return error_; }
  constexpr E&& error() && { return std::move(error_); }

 private:
  E error_;
};

template <typename E>
Unexpected(E) -> Unexpected<E>;

template <typename T, typename E>
class [[nodiscard]] Expected {
 public:
  using value_type = T;
  using error_type = E;

  constexpr Expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  constexpr Expected(const T& v) : v_(std::in_place_index<0>, v) {}  // NOLINT: implicit like std
  constexpr Expected(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT
  template <typename G>
  constexpr Expected(const Unexpected<G>& u) : v_(std::in_place_index<1>, u.error()) {}  // NOLINT
  template <typename G>
  constexpr Expected(Unexpected<G>&& u)  // NOLINT
      : v_(std::in_place_index<1>, std::move(u).error()) {}

  constexpr bool has_value() const { return v_.index() == 0; }
  constexpr explicit operator bool() const { return has_value(); }

  constexpr T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  constexpr const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  constexpr T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  constexpr const E& error() const {
    assert(!has_value());
    return std::get<1>(v_);
  }
  template <typename U>
  constexpr T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

  constexpr T* operator->() { return &value(); }
  constexpr const T* operator->() const { return &value(); }
  constexpr T& operator*() & { return value(); }
  constexpr const T& operator*() const& { return value(); }
  constexpr T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, E> v_;
};

// Expected<void, E>: success carries no value.
template <typename E>
class [[nodiscard]] Expected<void, E> {
 public:
  constexpr Expected() = default;
  template <typename G>
  constexpr Expected(const Unexpected<G>& u) : error_(u.error()), ok_(false) {}  // NOLINT
  constexpr bool has_value() const { return ok_; }
  constexpr explicit operator bool() const { return ok_; }
  constexpr const E& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  E error_{};
  bool ok_ = true;
};

}  // namespace derpkit
