/* libFuzzer target: codecs and the rendering of arbitrary bytes in every
 * format, and in the pages of the HTML view. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "html.h"
#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An HTML view page is UTF-8 and never holds a script, whatever the bytes
 * of the key, the value and the type. */
static void check_page(char *page, size_t len)
{
    if (page == NULL)
        return;
    if (!codec_utf8_valid(page, len) || strlen(page) != len || strcasestr(page, "<script"))
        abort();
    free(page);
}

static void html_pages(const char *in, size_t size)
{
    size_t half = size / 2, len = 0;
    char ctype[64];
    snprintf(ctype, sizeof(ctype), "%.*s", (int)(half < 63 ? half : 63), in);
    struct html_key k = {.canonical = (int)(size & 1), .key = in, .key_len = half,
                         .value = in + half, .value_len = size - half, .ctype = ctype,
                         .etag = "\"0\"", .last_modified = "-", .partition = 0};
    check_page(html_key_page(&k, &len), len);
    struct html_list l = {.prefix = in, .prefix_len = half, .start_after = in + half,
                          .start_after_len = size - half, .limit = 2, .limit_default = 1000,
                          .count = 1, .next = in, .next_len = size};
    struct html_entry e = {.size = size, .ctype = ctype};
    struct buf b = BUF_INIT;
    if (html_list_open(&b, &l) == 0 && html_list_key(&b, &l, in, size, &e) == 0 &&
        html_list_close(&b, &l) == 0) {
        char *page = buf_steal(&b, &len);
        check_page(page, len);
    } else {
        buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char *dec = malloc(size + 1);
    if (dec == NULL)
        return 0;
    ssize_t n = codec_pct_decode(in, size, dec, size & 1);
    if (n >= 0) {
        /* encode(decode(x)) decodes back to decode(x) */
        struct buf enc = BUF_INIT;
        if (codec_pct_encode(&enc, dec, (size_t)n, 1) == 0) {
            char *again = malloc(enc.len + 1);
            if (again) {
                ssize_t m = codec_pct_decode(enc.data ? enc.data : "", enc.len, again, 0);
                if (m != n || memcmp(again, dec, (size_t)n) != 0)
                    abort();
                free(again);
            }
        }
        buf_free(&enc);
    }
    free(dec);
    for (int markup = 0; markup <= 1; markup++) {
        const char *encoding;
        json_t *v = render_bytes_json(in, size, markup, &encoding);
        if (v == NULL)
            continue;
        json_t *doc = json_pack("{s:o, s:s}", "value", v, "encoding", encoding);
        for (int m = MEDIA_JSON; doc && m <= MEDIA_TEXT; m++) {
            size_t len;
            char *out = render_doc(doc, (enum media)m, "value", &len);
            if (out && (m == MEDIA_XML || m == MEDIA_HTML) && !codec_utf8_valid(out, len))
                abort(); /* markup output must stay well-formed UTF-8 */
            free(out);
        }
        json_decref(doc);
    }
    html_pages(in, size);
    return 0;
}
