/*
 * render.h -- one renderer per output format. Every response document
 * (values in JSON form, write results, lists, health, problem documents) is
 * built once as a jansson tree, and rendered here as JSON, XML, HTML or plain
 * text, so the formats cannot drift apart. XML and HTML output is escaped.
 */
#ifndef LKV_RENDER_H
#define LKV_RENDER_H

#include <jansson.h>
#include <stddef.h>

#include "negotiate.h"

/* Renders doc (an object) in format m (not MEDIA_RAW/MEDIA_NONE). root names
 * the document: the XML root element and the HTML title. Returns a malloc'd
 * body (caller frees) and sets *len, or NULL when out of memory. */
char *render_doc(const json_t *doc, enum media m, const char *root, size_t *len);

/* The Content-Type of a rendered document; problem documents get the
 * RFC 9457 types for JSON and XML. */
const char *render_content_type(enum media m, int problem);

/* A JSON string for arbitrary bytes: the text itself when it is UTF-8 (and,
 * for markup formats, holds no character XML cannot carry), else base64.
 * *encoding is set to "utf-8" or "base64". NULL when out of memory. */
json_t *render_bytes_json(const char *p, size_t len, int markup, const char **encoding);

#endif
