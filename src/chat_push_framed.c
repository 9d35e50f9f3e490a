/*
 * Push helpers for the length-framed kinds: the sending side of
 * evc_chat_set_terminator_prefix and evc_chat_set_terminator_netstring
 * (Twisted's Int32StringReceiver.sendString, NetstringReceiver.sendString).
 *
 * Each frame is queued with a single push, so a push that fails (the output
 * limit, a closing chat) leaves no header without its body in the stream.
 */
#include "chat_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames up to this size are assembled on the stack. */
#define STACK_FRAME 512

/* Pushes head then body as one copy. */
static int push_joined(evc_chat *c, const void *head, size_t hlen, const void *body, size_t blen,
                       const void *tail, size_t tlen)
{
    if (blen > SIZE_MAX - hlen - tlen)
        return -EMSGSIZE;
    size_t total = hlen + blen + tlen;
    char small[STACK_FRAME];
    char *frame = total <= sizeof small ? small : malloc(total);
    if (!frame)
        return -ENOMEM;
    memcpy(frame, head, hlen);
    if (blen)
        memcpy(frame + hlen, body, blen);
    if (tlen)
        memcpy(frame + hlen + blen, tail, tlen);
    int rc = evc_chat_push(c, frame, total);
    if (frame != small)
        free(frame);
    return rc;
}

int evc_chat_push_prefixed(evc_chat *c, unsigned width, bool big_endian, const void *p, size_t len)
{
    if (!c || (!p && len > 0) || (width != 1 && width != 2 && width != 4 && width != 8))
        return -EINVAL;
    if (width < 8 && (uint64_t)len >> (8 * width) != 0)
        return -EMSGSIZE;
    unsigned char head[8];
    uint64_t v = len;
    for (unsigned i = 0; i < width; i++) {
        unsigned shift = 8 * (big_endian ? width - 1 - i : i);
        head[i] = (unsigned char)(v >> shift);
    }
    return push_joined(c, head, width, p, len, NULL, 0);
}

int evc_chat_push_netstring(evc_chat *c, const void *p, size_t len)
{
    if (!c || (!p && len > 0))
        return -EINVAL;
    char head[24];
    int hlen = snprintf(head, sizeof head, "%llu:", (unsigned long long)len);
    return push_joined(c, head, (size_t)hlen, p, len, ",", 1);
}
