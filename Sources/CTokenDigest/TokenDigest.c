#include "CTokenDigest.h"

// Weak: resolved when swift-crypto's BoringSSL is part of the program (Linux), NULL otherwise.
extern uint8_t *CCryptoBoringSSL_SHA256(const uint8_t *data, size_t len, uint8_t out[32]) __attribute__((weak));

int usm_sha256_oneshot(const uint8_t *data, size_t length, uint8_t digest[32]) {
    if (CCryptoBoringSSL_SHA256 == NULL) {
        return 0;
    }
    CCryptoBoringSSL_SHA256(data, length, digest);
    return 1;
}
