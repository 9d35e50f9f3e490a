/*
 * The loop's memory account and budget (after Redis's maxmemory-clients).
 *
 * Each chat is bounded on its own (max_frame, output_limit), but a loop with
 * thousands of chats is not: two thousand clients each holding a 1 MiB partial
 * frame hold 2 GB.  So every loop keeps the sums of what its chats hold, and a
 * budget for them: past it, the chats holding the most are closed, each told
 * with handle_error(-ENOBUFS) first, until the rest fit, and the rest go on.
 *
 * What counts.  Input: the bytes a chat read and has not delivered (a partial
 * frame, a held-back terminator prefix, frames waiting behind a pause) and the
 * default collector's copy of a frame that spans reads.  Output: the bytes its
 * queue holds copies of (pushes, producers' staging).  Bytes queued by
 * reference (evc_chat_push_ref, evc_chat_push_shared, evc_chat_push_incoming)
 * are counted apart and not against the budget: the same buffer may be queued
 * on a thousand chats, and closing them would free none of it but the last
 * reference; the per-chat output limit bounds them.  Contents are counted, not
 * allocations: a block's unused room is the allocator's business.
 *
 * When it is counted.  Never per byte: a chat's holdings are brought into the
 * sums (evc__chat_account) at the end of each of its handlers and after each
 * push made from outside them, which are the only places they grow, and on
 * close.  That is a few additions.  Only when the sums pass the budget are the
 * loop's chats scanned (and then re-counted exactly).  evc_loop_stats re-counts
 * every chat, so what it reports is exact at any moment.
 *
 * Why the close waits for the chat's next handler.  Sums grow inside pushes,
 * and a push is often made from another chat's callback (a chat room relaying
 * a line to its members): calling the victim's handle_error there would run
 * user code in the middle of the user's own loop over members.  So the victim
 * is only marked, refuses further pushes (-ENOBUFS), and is closed from the top
 * of the handler the dispatcher runs for it before the loop sleeps.
 */
#include "chat_internal.h"

#include <errno.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/*
 * The heap is trimmed once chats that held this much between them have gone.
 * A crowd of clients each holding a large partial frame leaves, when it goes,
 * a heap full of free holes that glibc gives back only when asked: 2,000
 * chats that held 1 MiB each left 59 MB resident (15 MB for 200), and with
 * the trim 3.6 MB (3.1 MB), about where the process started.  Asking once per
 * 32 MiB of departed holdings costs one walk of the heap per many closes, and
 * never happens to a server whose chats stay (whose freed buffers malloc
 * reuses for the next frames, which is what makes it fast).
 */
#define TRIM_AFTER_BYTES ((size_t)32 << 20)

/* What the chat holds now: nothing once closed (its buffers go with it). */
static void holdings(const evc_chat *c, size_t *in, size_t *out, size_t *ref)
{
    if (!user_may_continue(c)) {
        *in = *out = *ref = 0;
        return;
    }
    *in = c->in.len + c->frame.len;
    *ref = evc__outq_ref_bytes(&c->out);
    *out = evc__outq_bytes(&c->out) - *ref;
}

/* Brings the sums up to date for one chat; no budget check. */
static void recount(evc_chat *c)
{
    evc_loop_memory *m = c->mem;
    size_t in, out, ref;
    holdings(c, &in, &out, &ref);
    m->input_bytes += in - c->acct_in;
    m->output_bytes += out - c->acct_out;
    m->referenced_bytes += ref - c->acct_ref;
    c->acct_in = in;
    c->acct_out = out;
    c->acct_ref = ref;
    if (in + out > c->acct_peak)
        c->acct_peak = in + out;
}

/* A chat that held acct_peak bytes has gone: give the heap's free pages back
 * once enough have (TRIM_AFTER_BYTES). */
static void note_released(evc_loop_memory *m, size_t peak)
{
    m->released += peak;
    if (m->released < TRIM_AFTER_BYTES)
        return;
    m->released = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* The chat no longer waits to be closed for the budget. */
static void undoom(evc_chat *c)
{
    c->mem->doomed_bytes -= c->acct_doomed;
    c->acct_doomed = 0;
    c->over_budget = false;
}

static size_t held(const evc_loop_memory *m)
{
    return m->input_bytes + m->output_bytes;
}

/* Over the budget, not counting chats already picked (whose holdings may have
 * shrunk below what they were picked with: writes go on until the close). */
static bool over_budget(const evc_loop_memory *m)
{
    size_t h = held(m);
    return m->budget && h > m->doomed_bytes && h - m->doomed_bytes > m->budget;
}

/*
 * Over the budget: re-counts every chat, then picks the chats holding the most,
 * one after the other, until what the others hold fits.  O(chats) per pick;
 * the picks are few unless the budget was cut far below what is held.
 */
static void enforce(evc_loop_memory *m)
{
    for (evc_chat *c = m->first; c; c = c->mem_next)
        recount(c);
    while (over_budget(m)) {
        evc_chat *victim = NULL;
        size_t most = 0;
        for (evc_chat *c = m->first; c; c = c->mem_next) {
            size_t h = c->acct_in + c->acct_out;
            if (!c->over_budget && h > most) {
                most = h;
                victim = c;
            }
        }
        if (!victim)
            return;
        victim->over_budget = true;
        victim->acct_doomed = most;
        m->doomed_bytes += most;
        evc__dispatcher_schedule_write(victim->disp);
    }
}

void evc__chat_account(evc_chat *c)
{
    recount(c);
    if (over_budget(c->mem))
        enforce(c->mem);
}

void evc__chat_memory_join(evc_chat *c)
{
    evc_loop_memory *m = evc__registry_memory(evc__dispatcher_entry(c->disp));
    c->mem = m;
    c->mem_prev = NULL;
    c->mem_next = m->first;
    if (m->first)
        m->first->mem_prev = c;
    m->first = c;
}

void evc__chat_memory_leave(evc_chat *c)
{
    evc_loop_memory *m = c->mem;
    if (!m)
        return;
    undoom(c);
    m->input_bytes -= c->acct_in;
    m->output_bytes -= c->acct_out;
    m->referenced_bytes -= c->acct_ref;
    note_released(m, c->acct_peak);
    if (c->mem_prev)
        c->mem_prev->mem_next = c->mem_next;
    else
        m->first = c->mem_next;
    if (c->mem_next)
        c->mem_next->mem_prev = c->mem_prev;
    c->mem = NULL;
}

bool evc__chat_memory_settle(evc_chat *c)
{
    if (!c->over_budget)
        return false;
    undoom(c);
    if (!user_may_continue(c))
        return true;
    c->mem->budget_closes++;
    evc__chat_report_error(c, -ENOBUFS);
    /* The handler is told why; the memory is given back whatever it does. */
    if (user_may_continue(c))
        evc_chat_close(c);
    recount(c);
    return true;
}

int evc_loop_set_memory_budget(struct ev_loop *loop, size_t bytes)
{
    evc_loop_entry *e = loop ? evc__registry_find(loop) : NULL;
    if (!e)
        return loop ? -ENOENT : -EINVAL;
    evc_loop_memory *m = evc__registry_memory(e);
    m->budget = bytes;
    if (over_budget(m))
        enforce(m);
    return 0;
}

int evc_loop_stats(struct ev_loop *loop, struct evc_loop_stats *out)
{
    if (!loop || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    evc_loop_entry *e = evc__registry_find(loop);
    if (!e)
        return 0;
    evc_loop_memory *m = evc__registry_memory(e);
    for (evc_chat *c = m->first; c; c = c->mem_next) {
        recount(c);
        out->chats += user_may_continue(c);
    }
    out->input_bytes = m->input_bytes;
    out->output_bytes = m->output_bytes;
    out->referenced_bytes = m->referenced_bytes;
    out->dispatchers = evc__registry_dispatchers(loop);
    out->budget = m->budget;
    out->budget_closes = m->budget_closes;
    return 0;
}
