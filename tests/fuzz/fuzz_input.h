/* Shared by the fuzz targets whose parsers take NUL-terminated text. */
#ifndef LKV_FUZZ_INPUT_H
#define LKV_FUZZ_INPUT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The fuzzer's bytes as a malloc'd C string (cut at the first NUL by the
 * parser, as a header or request line would be), or NULL. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

#endif
