#ifndef USM_CTOKENDIGEST_H
#define USM_CTOKENDIGEST_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 of `length` bytes at `data`, written to `digest` (32 bytes), through BoringSSL's one-shot
/// `SHA256()` as linked into the program by swift-crypto (exported there as `CCryptoBoringSSL_SHA256`).
///
/// swift-crypto's `SHA256` type allocates and zeroes a context object per hash, which is most of the
/// cost of hashing a 47-byte session token; the one-shot function keeps its context on the stack.
/// Returns 1 when the digest was written, 0 when that function is not linked (a platform where
/// swift-crypto does not build BoringSSL): the caller then uses swift-crypto's API.
int usm_sha256_oneshot(const uint8_t *data, size_t length, uint8_t digest[32]);

#endif
