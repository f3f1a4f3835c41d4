/* libFuzzer target: request targets (path, percent-decoding, query) and key checks. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_input.h"

#include "uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = fuzz_cstring(data, size);
    if (raw == NULL)
        return 0;
    struct uri u;
    if (uri_parse(raw, &u) == LKV_OK && u.route == ROUTE_KEY) {
        const char *why;
        uri_check_key(u.key, u.key_len, 250, 0, &why);
        uri_check_key(u.key, u.key_len, 250, 1, &why);
    }
    uri_free(&u);
    free(raw);
    return 0;
}
