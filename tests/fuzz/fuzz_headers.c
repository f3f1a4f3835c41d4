/* libFuzzer target: Accept, If-Match and If-None-Match parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "negotiate.h"
#include "version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *h = malloc(size + 1);
    if (h == NULL)
        return 0;
    memcpy(h, data, size);
    h[size] = '\0';
    int star;
    negotiate_media(h, NULL);
    negotiate_media(h, "image/png");
    negotiate_media("application/json;q=0.5, */*", h);
    version_etag_list_match(h, 0x10, 0, &star);
    version_etag_list_match(h, 0x10, 1, &star);
    free(h);
    return 0;
}
