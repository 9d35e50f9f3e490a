/*
 * The frame deadline: how long a frame may take from its first byte to its
 * terminator (HTTP's header timeout), apart from the idle timeout that every
 * byte pushes back, so a client trickling a byte now and then cannot hold a
 * connection forever.
 *
 * "A frame's first byte" is the first byte read after the previous frame
 * ended: for a byte-string, line or delimiter-set terminator the first byte
 * of the line; for a count (and count-then-delimiter) the first byte of the
 * counted body, not the moment the count was set; for a length prefix or a
 * netstring the first byte of the header.  With no terminator (or a count
 * already reached) there are no frames and the deadline does not apply: the
 * idle timeout is the bound there.
 *
 * Nothing is done per byte or per frame.  After each read the chat asks once
 * whether a frame is in progress and whether one ended during the read; the
 * dispatcher's one timer holds the earlier of the idle and frame dues and is
 * moved only when a frame begins and the timer would fire too late for it.
 * When it fires, the chat checks again whether the frame is still in progress.
 */
#include "chat_internal.h"

bool evc__chat_in_frame(const evc_chat *c)
{
    if (!evc__scanner_framing(&c->scanner) || input_discarding(c) || input_ended(c))
        return false;
    return c->in.len > 0 || c->frame.len > 0 || evc__scanner_in_frame(&c->scanner);
}

void evc__chat_track_frame(evc_chat *c, unsigned frames_before)
{
    if (!user_may_continue(c))
        return;
    if (!evc__chat_in_frame(c))
        evc__dispatcher_frame_end(c->disp);
    else if (c->frames_done != frames_before || !evc__dispatcher_frame_open(c->disp))
        evc__dispatcher_frame_begin(c->disp);   /* begun in this read */
}

void evc_chat_set_frame_deadline(evc_chat *c, double seconds)
{
    if (!c || !user_may_continue(c))
        return;
    c->frame_deadline_on = seconds > 0;
    evc__dispatcher_set_frame_deadline(c->disp, seconds, evc__chat_frame_expired);
    /* A frame already begun is timed from now. */
    if (c->frame_deadline_on && evc__chat_in_frame(c))
        evc__dispatcher_frame_begin(c->disp);
}
