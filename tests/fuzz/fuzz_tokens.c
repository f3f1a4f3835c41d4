/* libFuzzer target: the tokens file parser ([auth] tokens_file) on arbitrary
 * bytes, and the scope check of every token it accepts. */
#include <stdint.h>
#include <stdlib.h>

#include "authfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct auth_set *set = authfile_parse((const char *)data, size, err, sizeof(err));
    if (set == NULL)
        return 0;
    /* every accepted token covers itself as a key, and "" only with '*' */
    for (int i = 0; i < set->ntokens; i++) {
        const struct auth_token *t = &set->tokens[i];
        if (auth_token_covers(t, "", 0) != t->everything)
            abort();
        for (int p = 0; p < t->nprefixes; p++)
            if (t->prefixes[p].bytes && !auth_token_covers(t, t->prefixes[p].bytes, t->prefixes[p].len))
                abort();
    }
    auth_set_free(set);
    return 0;
}
