#include "dist_cipher.h"

#include <limits.h>
#include <openssl/evp.h>

struct dist_gcm {
    EVP_CIPHER_CTX *ctx;
    int seal;
};

dist_gcm *dist_gcm_new(const uint8_t *key, int seal) {
    dist_gcm *gcm = OPENSSL_zalloc(sizeof *gcm);
    if (gcm == NULL) return NULL;
    gcm->seal = seal != 0;
    gcm->ctx = EVP_CIPHER_CTX_new();
    if (gcm->ctx == NULL || EVP_CipherInit_ex2(gcm->ctx, EVP_aes_256_gcm(), key, NULL, gcm->seal, NULL) != 1) {
        dist_gcm_free(gcm);
        return NULL;
    }
    return gcm;
}

void dist_gcm_free(dist_gcm *gcm) {
    if (gcm == NULL) return;
    EVP_CIPHER_CTX_free(gcm->ctx);
    OPENSSL_free(gcm);
}

// (The key stays: a new IV alone restarts the context.)
static int start(dist_gcm *gcm, const uint8_t *iv, const uint8_t *aad, size_t aad_length) {
    int n = 0;
    if (aad_length > INT_MAX) return 0;
    if (EVP_CipherInit_ex2(gcm->ctx, NULL, NULL, iv, gcm->seal, NULL) != 1) return 0;
    return aad_length == 0 || EVP_CipherUpdate(gcm->ctx, NULL, &n, aad, (int)aad_length) == 1;
}

int dist_gcm_seal(dist_gcm *gcm, const uint8_t *iv, const uint8_t *aad, size_t aad_length,
                  const uint8_t *plain, size_t length, uint8_t *cipher, uint8_t *tag) {
    int n = 0, last = 0;
    if (!gcm->seal || length > INT_MAX || !start(gcm, iv, aad, aad_length)) return 0;
    if (length > 0 && EVP_CipherUpdate(gcm->ctx, cipher, &n, plain, (int)length) != 1) return 0;
    if (EVP_CipherFinal_ex(gcm->ctx, cipher + n, &last) != 1) return 0;
    return EVP_CIPHER_CTX_ctrl(gcm->ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
}

int dist_gcm_open(dist_gcm *gcm, const uint8_t *iv, const uint8_t *aad, size_t aad_length,
                  const uint8_t *cipher, size_t length, const uint8_t *tag, uint8_t *plain) {
    int n = 0, last = 0;
    if (gcm->seal || length > INT_MAX || !start(gcm, iv, aad, aad_length)) return 0;
    if (length > 0 && EVP_CipherUpdate(gcm->ctx, plain, &n, cipher, (int)length) != 1) return 0;
    if (EVP_CIPHER_CTX_ctrl(gcm->ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) != 1) return 0;
    return EVP_CipherFinal_ex(gcm->ctx, plain + n, &last) == 1;
}
