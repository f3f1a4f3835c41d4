/* libFuzzer target: the configuration loader on arbitrary files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (path[0] == '\0') {
        snprintf(path, sizeof(path), "/tmp/lazykv-fuzz-%d.cfg", (int)getpid());
        /* Unknown-key warnings would flood the output; errors still print,
         * and `make fuzz` runs with -close_fd_mask=2 to silence them. */
        log_init("fuzz", LOG_ERROR);
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char err[256];
    struct lkv_config *cfg = config_load(path, (int)(size & 1), err, sizeof(err));
    config_free(cfg);
    return 0;
}
