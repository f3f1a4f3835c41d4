/* libFuzzer target: codecs and the rendering of arbitrary bytes in every format. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    return 0;
}
