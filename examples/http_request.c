/*
 * The parsing half of examples/http_server: everything here works on one line
 * that the chat has already framed (the request line, a header line, a
 * chunk-size line), so none of it searches for line ends, buffers partial
 * input or knows about sockets.  That is the point of writing HTTP on a chat:
 * the framing engine finds the lines, the counts and the chunks, and what is
 * left for the protocol is a few small functions over complete pieces.
 *
 * The grammar is RFC 9112's, checked as strictly as a server that answers
 * real clients should be: tokens are tokens, a header without a colon or with
 * white space before it is 400 (it is how request smuggling starts), and so is
 * a Content-Length next to Transfer-Encoding or two different lengths.
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar: the bytes a method or a header name may hold. */
static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A target may hold any visible ASCII byte (the client percent-encodes the rest). */
static bool is_target_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

int http_parse_request_line(http_request *req, const char *line, size_t len)
{
    /* Kept as sent for the access log, even when it does not parse. */
    memcpy(req->line, line, len);
    req->line[len] = '\0';
    const char *end = line + len;
    const char *p = line;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    size_t method_len = (size_t)(p - line);
    if (method_len == 0 || p == end || *p != ' ')
        return 400;
    const char *target = ++p;
    while (p < end && is_target_char((unsigned char)*p))
        p++;
    size_t target_len = (size_t)(p - target);
    if (target_len == 0 || p == end || *p != ' ')
        return 400;
    const char *version = ++p;
    size_t version_len = (size_t)(end - version);
    /* "HTTP/" DIGIT "." DIGIT, exactly. */
    if (version_len != 8 || memcmp(version, "HTTP/", 5) != 0 || !isdigit((unsigned char)version[5]) ||
        version[6] != '.' || !isdigit((unsigned char)version[7]))
        return 400;
    memcpy(req->target, target, target_len);
    req->target[target_len] = '\0';
    /* A major version other than 1 is one this server does not speak; a later
     * minor is answered as 1.1, as RFC 9110 section 6.2 asks. */
    if (version[5] != '1')
        return 505;
    req->minor = version[7] - '0';
    req->keep_alive = req->minor >= 1;
    if (method_len >= sizeof req->method)
        return 501;
    memcpy(req->method, line, method_len);
    req->method[method_len] = '\0';
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 &&
        strcmp(req->method, "POST") != 0)
        return 501;
    return 0;
}

/* Whether the comma-separated list value holds token (any case). */
static bool list_has(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value, *end = value + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if ((size_t)(stop - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

/* A decimal Content-Length: digits only, no sign, no overflow. */
static int parse_length(const char *value, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)value[i]))
            return -1;
        n = n * 10 + (uint64_t)(value[i] - '0');
    }
    *out = n;
    return 0;
}

int http_parse_header(http_request *req, const char *line, size_t len)
{
    const char *end = line + len;
    const char *p = line;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    size_t name_len = (size_t)(p - line);
    /* Also refuses obsolete line folding (a line starting with white space). */
    if (name_len == 0 || p == end || *p != ':')
        return 400;
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *value = p;
    const char *vend = end;
    while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    size_t vlen = (size_t)(vend - value);
    for (size_t i = 0; i < vlen; i++)
        if (value[i] == '\0' || value[i] == '\r' || value[i] == '\n')
            return 400;

#define NAME_IS(s) (name_len == sizeof(s) - 1 && strncasecmp(line, s, name_len) == 0)
    if (NAME_IS("Content-Length")) {
        uint64_t n;
        if (parse_length(value, vlen, &n) < 0 || (req->has_length && n != req->content_length))
            return 400;
        req->has_length = true;
        req->content_length = n;
    } else if (NAME_IS("Transfer-Encoding")) {
        /* Only "chunked", and only once: anything else is a coding we cannot undo. */
        if (vlen != 7 || strncasecmp(value, "chunked", 7) != 0 || req->chunked)
            return 501;
        req->chunked = true;
    } else if (NAME_IS("Connection")) {
        if (list_has(value, vlen, "close"))
            req->keep_alive = false;
        else if (list_has(value, vlen, "keep-alive"))
            req->keep_alive = true;
    } else if (NAME_IS("Host")) {
        if (req->has_host)
            return 400;
        req->has_host = true;
    } else if (NAME_IS("Expect")) {
        if (vlen == 12 && strncasecmp(value, "100-continue", 12) == 0)
            req->expect_continue = true;
    } else if (NAME_IS("Range")) {
        if (vlen < sizeof req->range) {
            memcpy(req->range, value, vlen);
            req->range[vlen] = '\0';
        }
    } else if (NAME_IS("If-Modified-Since")) {
        char text[64];
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        if (vlen < sizeof text) {
            memcpy(text, value, vlen);
            text[vlen] = '\0';
            const char *rest = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
            if (rest && *rest == '\0')
                req->if_modified_since = timegm(&tm);
        }
    }
#undef NAME_IS
    /* Both framings at once is how requests are smuggled past proxies. */
    if (req->has_length && req->chunked)
        return 400;
    return 0;
}

int http_parse_chunk_size(const char *line, size_t len, uint64_t *size)
{
    size_t i = 0;
    uint64_t n = 0;
    while (i < len && isxdigit((unsigned char)line[i])) {
        if (i >= 15)
            return -1;      /* over 2^60 bytes: not a chunk anybody sends */
        int digit = isdigit((unsigned char)line[i]) ? line[i] - '0'
                                                     : tolower((unsigned char)line[i]) - 'a' + 10;
        n = n * 16 + (uint64_t)digit;
        i++;
    }
    if (i == 0)
        return -1;
    /* Chunk extensions (";name=value") are allowed and ignored. */
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i < len && line[i] != ';')
        return -1;
    *size = n;
    return 0;
}

void http_format_date(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static int hex_value(unsigned char ch)
{
    if (isdigit(ch))
        return ch - '0';
    if (isxdigit(ch))
        return tolower(ch) - 'a' + 10;
    return -1;
}

int http_decode_path(const char *target, char *out, size_t cap)
{
    if (target[0] != '/')
        return -1;      /* absolute-form and '*' are for proxies and OPTIONS */
    size_t n = 0;
    for (const char *p = target; *p && *p != '?' && *p != '#'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '%') {
            int hi = hex_value((unsigned char)p[1]);
            int lo = hi < 0 ? -1 : hex_value((unsigned char)p[2]);
            if (lo < 0)
                return -1;
            ch = (unsigned char)(hi * 16 + lo);
            if (ch == '\0')
                return -1;
            p += 2;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return 0;
}
