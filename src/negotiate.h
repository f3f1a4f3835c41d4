/*
 * negotiate.h -- picks a response format from an Accept header (RFC 9110
 * section 12.5.1), honouring q-values and the specificity of media ranges.
 * Pure: no I/O, no allocation.
 */
#ifndef LKV_NEGOTIATE_H
#define LKV_NEGOTIATE_H

enum media {
    MEDIA_RAW,  /* the stored value as written, with its own Content-Type */
    MEDIA_JSON, /* application/json */
    MEDIA_XML,  /* application/xml */
    MEDIA_HTML, /* text/html */
    MEDIA_TEXT, /* text/plain */
    MEDIA_NONE  /* nothing acceptable: 406 */
};

/* The best format for accept (NULL or empty: anything). raw_type is the
 * stored value's content type when a raw value can be served, or NULL for
 * documents (messages, lists, errors), whose default is JSON. On equal
 * q-values the order of preference is raw, JSON, XML, HTML, text. */
enum media negotiate_media(const char *accept, const char *raw_type);

/* 0 when negotiate_media(accept, t) is MEDIA_RAW or MEDIA_NONE for every
 * stored type t, so that a HEAD can be answered without reading the value;
 * 1 when a document may be chosen (its length needs the value). May answer
 * 1 where a document would not in fact win, never 0 where one would. */
int negotiate_document_possible(const char *accept);

/* The Content-Type sent for a document format (not MEDIA_RAW). */
const char *negotiate_content_type(enum media m);

#endif
