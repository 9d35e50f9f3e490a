/*
 * The inline request form of examples/resp_server ("SET k v" typed into nc),
 * split into words with redis' quoting rules.  Knows nothing of the network.
 */
#ifndef EVC_EXAMPLE_RESP_INLINE_H
#define EVC_EXAMPLE_RESP_INLINE_H

#include <stddef.h>

/* Receives one word (n bytes, valid during the call); 0, or a negative errno to stop. */
typedef int resp_word_fn(const char *word, size_t n, void *data);

/* Splits line (len bytes) into words the way redis-cli and redis do: words separated
 * by blanks; "double quotes" with backslash escapes (\n, \xff, ...); 'single quotes'
 * where only \' is special; a closing quote must end its word.  Calls add for each
 * word in order.  0, -EINVAL (unbalanced quotes) or -ENOMEM (also when add fails). */
int resp_split_inline(const char *line, size_t len, resp_word_fn *add, void *data);

#endif
