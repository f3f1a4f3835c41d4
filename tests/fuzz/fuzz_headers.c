/* libFuzzer target: Accept, If-Match and If-None-Match parsing. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_input.h"

#include "negotiate.h"
#include "version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *h = fuzz_cstring(data, size);
    if (h == NULL)
        return 0;
    int star;
    negotiate_media(h, NULL);
    negotiate_media(h, "image/png");
    negotiate_media("application/json;q=0.5, */*", h);
    version_etag_list_match(h, 0x10, 0, &star);
    version_etag_list_match(h, 0x10, 1, &star);
    free(h);
    return 0;
}
