/*
 * Where smtp_sink puts an accepted message: printed to stdout the way Python's
 * smtpd.DebuggingServer prints it, or delivered into a Maildir.  Knows nothing
 * of SMTP or of evchat; the message is the bytes the client sent, dot-unstuffed,
 * ending with the CRLF of its last line.
 */
#ifndef EVC_EXAMPLE_SMTP_DELIVER_H
#define EVC_EXAMPLE_SMTP_DELIVER_H

#include <stddef.h>
#include <stdio.h>

typedef struct smtp_maildir {
    const char *dir;          /* the Maildir (it holds tmp/, new/ and cur/) */
    char host[64];            /* this host's name, as the unique file names carry it */
    unsigned long delivered;  /* messages so far: part of each unique name */
} smtp_maildir;

/* Prints the message between DebuggingServer's two marker lines, each line ending
 * "\n", with "X-Peer: <peer>" before the blank line that ends the headers; then
 * flushes out.  0, or -errno when out failed. */
int smtp_print_message(FILE *out, const char *peer, const char *msg, size_t len);

/* Creates dir and its tmp/, new/ and cur/ where missing.  0 or -errno. */
int smtp_maildir_open(smtp_maildir *md, const char *dir);

/* Writes the message byte for byte into tmp/ under a unique name, syncs it, then
 * renames it into new/ (and syncs new/), so a reader never sees half a message.
 * 0, or -errno (nothing is left behind in tmp/). */
int smtp_maildir_deliver(smtp_maildir *md, const char *msg, size_t len);

#endif
