#include "base/escape.h"

char *escape_text(char *out, size_t cap, const void *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    size_t o = 0;
    if (!cap)
        return out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)c;
        } else if (c == '\\') {
            if (o + 2 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = '\\';
        } else {
            if (o + 4 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

struct peer_text peer_text(const void *in, size_t len)
{
    struct peer_text t;
    escape_text(t.s, sizeof t.s, in, len > PEER_TEXT_MAX ? PEER_TEXT_MAX : len);
    return t;
}
