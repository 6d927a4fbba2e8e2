#include "CTLSIdentity.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/// The longest certificate chain accepted.
#define CTLS_MAXIMUM_CHAIN 16

/// One certificate chain and key; the older ones are kept, linked, until the identity is destroyed.
struct CTLSPair {
    gnutls_pcert_st certificates[CTLS_MAXIMUM_CHAIN];
    unsigned int count;
    gnutls_privkey_t key;
    struct CTLSPair *previous;
};

struct CTLSIdentity {
    pthread_mutex_t lock;
    struct CTLSPair *current; /* NULL until the first successful load */
};

static _Atomic(CTLSIdentity_Resolver) resolver = NULL;

CTLSIdentity *CTLSIdentity_create(void) {
    CTLSIdentity *identity = calloc(1, sizeof *identity);
    if (identity == NULL) return NULL;
    pthread_mutex_init(&identity->lock, NULL);
    return identity;
}

static void free_pair(struct CTLSPair *pair) {
    for (unsigned int index = 0; index < pair->count; index++) gnutls_pcert_deinit(&pair->certificates[index]);
    if (pair->key != NULL) gnutls_privkey_deinit(pair->key);
    free(pair);
}

void CTLSIdentity_destroy(CTLSIdentity *identity) {
    if (identity == NULL) return;
    struct CTLSPair *pair = identity->current;
    while (pair != NULL) {
        struct CTLSPair *previous = pair->previous;
        free_pair(pair);
        pair = previous;
    }
    pthread_mutex_destroy(&identity->lock);
    free(identity);
}

static int fail(char *error, size_t capacity, int code, const char *what) {
    snprintf(error, capacity, "%s: %s", what, gnutls_strerror(code));
    return code < 0 ? code : GNUTLS_E_INTERNAL_ERROR;
}

int CTLSIdentity_load(CTLSIdentity *identity,
                      const char *certificate, size_t certificate_length,
                      const char *key, size_t key_length,
                      char *error, size_t error_capacity,
                      int64_t *not_after) {
    if (certificate_length > UINT32_MAX || key_length > UINT32_MAX) {
        return fail(error, error_capacity, GNUTLS_E_INVALID_REQUEST, "certificate or key too large");
    }
    gnutls_datum_t certificate_data = { (unsigned char *) certificate, (unsigned int) certificate_length };
    gnutls_datum_t key_data = { (unsigned char *) key, (unsigned int) key_length };

    /* GnuTLS checks here that the key belongs to the certificate (GNUTLS_E_CERTIFICATE_KEY_MISMATCH). */
    gnutls_certificate_credentials_t check;
    int code = gnutls_certificate_allocate_credentials(&check);
    if (code < 0) return fail(error, error_capacity, code, "cannot allocate credentials");
    code = gnutls_certificate_set_x509_key_mem2(check, &certificate_data, &key_data, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(check);
    if (code < 0) return fail(error, error_capacity, code, "certificate and key");

    struct CTLSPair *pair = calloc(1, sizeof *pair);
    if (pair == NULL) return fail(error, error_capacity, GNUTLS_E_MEMORY_ERROR, "cannot allocate");
    unsigned int count = CTLS_MAXIMUM_CHAIN;
    code = gnutls_pcert_list_import_x509_raw(pair->certificates, &count, &certificate_data, GNUTLS_X509_FMT_PEM,
                                             GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (code < 0) {
        free(pair);
        return fail(error, error_capacity, code, "certificate chain (the server's certificate first, at most 16)");
    }
    pair->count = count;
    code = gnutls_privkey_init(&pair->key);
    if (code == 0) code = gnutls_privkey_import_x509_raw(pair->key, &key_data, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (code < 0) {
        free_pair(pair);
        return fail(error, error_capacity, code, "private key");
    }
    gnutls_x509_crt_t server_certificate;
    code = gnutls_pcert_export_x509(&pair->certificates[0], &server_certificate);
    if (code < 0) {
        free_pair(pair);
        return fail(error, error_capacity, code, "certificate");
    }
    *not_after = (int64_t) gnutls_x509_crt_get_expiration_time(server_certificate);
    gnutls_x509_crt_deinit(server_certificate);

    pthread_mutex_lock(&identity->lock);
    pair->previous = identity->current;
    identity->current = pair;
    pthread_mutex_unlock(&identity->lock);
    return 0;
}

void CTLSIdentity_set_resolver(CTLSIdentity_Resolver new_resolver) {
    atomic_store(&resolver, new_resolver);
}

static int retrieve(gnutls_session_t session,
                    const gnutls_datum_t *requested_authorities, int authority_count,
                    const gnutls_pk_algorithm_t *algorithms, int algorithm_count,
                    gnutls_pcert_st **certificates, unsigned int *certificate_count,
                    gnutls_privkey_t *key) {
    (void) requested_authorities;
    (void) authority_count;
    (void) algorithms;
    (void) algorithm_count;
    CTLSIdentity_Resolver resolve = atomic_load(&resolver);
    CTLSIdentity *identity = resolve == NULL ? NULL : resolve(gnutls_session_get_ptr(session));
    if (identity == NULL) return -1;
    pthread_mutex_lock(&identity->lock);
    struct CTLSPair *pair = identity->current;
    pthread_mutex_unlock(&identity->lock);
    if (pair == NULL) return -1;
    *certificates = pair->certificates;
    *certificate_count = pair->count;
    *key = pair->key;
    return 0;
}

void *CTLSIdentity_retrieve_function(void) {
    return (void *) &retrieve;
}
