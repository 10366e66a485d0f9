/* TLS 1.3 external pre-shared keys (--tls-psk FILE): the key file, and
 * the session OpenSSL's PSK callbacks hand out for it. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/tls_internal.h"

int tls_read_psk(const char *path, uint8_t *key, size_t *len, struct error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, "cannot open the pre-shared key %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
        close(fd);
        return error_set(err, "the pre-shared key %s must be readable only by its owner "
                         "(chmod 600)", path);
    }
    char text[2 * PSK_MAX_BYTES + 8];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0)
        return error_set(err, "cannot read %s: %s", path, strerror(errno));
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    text[n] = '\0';
    if (n % 2 || n / 2 < PSK_MIN_BYTES || n / 2 > PSK_MAX_BYTES)
        return error_set(err, "the pre-shared key %s must hold %d to %d bytes in hex "
                         "(e.g. openssl rand -hex 32)", path, PSK_MIN_BYTES, PSK_MAX_BYTES);
    for (ssize_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)text[2 * i]) || !isxdigit((unsigned char)text[2 * i + 1]) ||
            sscanf(text + 2 * i, "%2x", &v) != 1)
            return error_set(err, "the pre-shared key %s is not hex", path);
        key[i] = (uint8_t)v;
    }
    *len = (size_t)n / 2;
    return 0;
}

/* The session that carries an external PSK: TLS 1.3, AES-256-GCM-SHA384. */
static SSL_SESSION *psk_session(SSL *ssl, const struct tls_channel *t)
{
    static const unsigned char aes256_sha384[2] = {0x13, 0x02};
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes256_sha384);
    SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;
    if (s && SSL_SESSION_set1_master_key(s, t->psk, t->psk_len) &&
        SSL_SESSION_set_cipher(s, cipher) && SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))
        return s;
    SSL_SESSION_free(s);
    return NULL;
}

static int psk_use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                           SSL_SESSION **sess)
{
    const struct tls_channel *t = SSL_get_app_data(ssl);
    SSL_SESSION *s = psk_session(ssl, t);
    if (!s)
        return 0;
    if (md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
        /* Asked again for a suite the key is not bound to: no PSK for it. */
        SSL_SESSION_free(s);
        *sess = NULL;
        *id = NULL;
        *idlen = 0;
        return 1;
    }
    *sess = s;
    *id = (const unsigned char *)PSK_IDENTITY;
    *idlen = strlen(PSK_IDENTITY);
    return 1;
}

static int psk_find_session(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    const struct tls_channel *t = SSL_get_app_data(ssl);
    *sess = NULL;
    if (idlen != strlen(PSK_IDENTITY) || memcmp(id, PSK_IDENTITY, idlen) != 0)
        return 1; /* not our identity: no PSK, and without a certificate no handshake */
    *sess = psk_session(ssl, t);
    return *sess ? 1 : 0;
}

void tls_psk_install(SSL_CTX *ctx, bool server)
{
    if (server)
        SSL_CTX_set_psk_find_session_callback(ctx, psk_find_session);
    else
        SSL_CTX_set_psk_use_session_callback(ctx, psk_use_session);
}
