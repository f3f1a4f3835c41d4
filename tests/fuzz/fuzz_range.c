/* libFuzzer target: Range against lengths, If-Range, and Content-Range of
 * what is accepted. Checks the contract, not only the absence of crashes:
 * a range is inside the value, and its Content-Range fits the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"

#include "range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *h, uint64_t length)
{
    struct byte_range r = {0, 0};
    char out[RANGE_CONTENT_RANGE_MAX];
    switch (range_parse(h, length, &r)) {
    case RANGE_ONE:
        if (length == 0 || r.first > r.last || r.last >= length)
            abort();
        range_content_range(&r, length, out);
        if (strncmp(out, "bytes ", 6) != 0 || strlen(out) > sizeof(out) - 2)
            abort(); /* never cut: RANGE_CONTENT_RANGE_MAX has a byte to spare */
        break;
    case RANGE_UNSATISFIABLE:
        range_unsatisfied(length, out);
        break;
    case RANGE_NONE:
    case RANGE_SEVERAL:
        break;
    default:
        abort();
    }
    /* what a GET sends: inside the value, and a Content-Range exactly on
     * 206 and 416 */
    struct range_answer a;
    range_answer(h, NULL, "\"1\"", length, &a);
    if (a.status == 206 && (a.length == 0 || a.offset >= length || a.length > length - a.offset ||
                            a.content_range[0] == '\0'))
        abort();
    if (a.status == 200 && (a.offset != 0 || a.length != length || a.content_range[0] != '\0'))
        abort();
    if (a.status == 416 && (a.length != 0 || strncmp(a.content_range, "bytes */", 8) != 0))
        abort();
    if (a.status != 200 && a.status != 206 && a.status != 416)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *h = fuzz_cstring(data, size);
    if (h == NULL)
        return 0;
    static const uint64_t lengths[] = {0, 1, 10, 1u << 20, (1u << 20) + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
        check(h, lengths[i]);
    /* a strong tag matches itself; a weak one never matches */
    struct byte_range a, b;
    if (h[0] == '"' && strpbrk(h, " \t") == NULL && range_if_range(h, h) != 1)
        abort();
    if (strncmp(h, "W/", 2) == 0 && range_if_range(h, h) != 0)
        abort();
    /* without If-Range, evaluate is parse */
    if (range_evaluate(h, NULL, "\"1\"", 10, &a) != range_parse(h, 10, &b))
        abort();
    range_if_range(h, "\"0000000000000001\"");
    free(h);
    return 0;
}
