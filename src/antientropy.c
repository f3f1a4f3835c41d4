/* placeholder, replaced by the anti-entropy implementation */
#include <stdio.h>
#include "config.h"
int admin_verify(const struct lkv_config *cfg, int repair, int verbose);
int admin_verify(const struct lkv_config *cfg, int repair, int verbose)
{
    (void)cfg; (void)repair; (void)verbose;
    fprintf(stderr, "lazykv-admin: verify is not available yet\n");
    return 2;
}
