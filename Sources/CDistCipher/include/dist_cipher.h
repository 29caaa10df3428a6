// AES-256-GCM with a key schedule kept per direction of a Move's channel (OpenSSL's EVP).
// swift-crypto expands the key and builds its GHASH tables again for every frame it seals or
// opens, and copies through Data; a channel seals thousands of frames per key, each in place.
#ifndef DIST_CIPHER_H
#define DIST_CIPHER_H

#include <stddef.h>
#include <stdint.h>

typedef struct dist_gcm dist_gcm;

/// A context for `key` (32 bytes), sealing when `seal` is non-zero, else opening. NULL on failure.
dist_gcm *dist_gcm_new(const uint8_t *key, int seal);
void dist_gcm_free(dist_gcm *gcm);

/// Encrypts `length` bytes of `plain` into `cipher` (may be the same memory) under the 12-byte
/// `iv`, authenticating `aad` too, and writes the 16-byte tag. 1 on success.
int dist_gcm_seal(dist_gcm *gcm, const uint8_t *iv, const uint8_t *aad, size_t aad_length,
                  const uint8_t *plain, size_t length, uint8_t *cipher, uint8_t *tag);

/// Decrypts and verifies; 1 only when `tag` verifies (then `plain` holds the text).
int dist_gcm_open(dist_gcm *gcm, const uint8_t *iv, const uint8_t *aad, size_t aad_length,
                  const uint8_t *cipher, size_t length, const uint8_t *tag, uint8_t *plain);

#endif
