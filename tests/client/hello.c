/* README's example, built by test_client_install.py against an installed
 * tree with `cc hello.c $(pkg-config --cflags --libs lazykv)`. */
#include <lazykv.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    lkv *c = lkv_open(argc > 1 ? argv[1] : "http://127.0.0.1:8080", NULL);
    if (c == NULL)
        return 2;
    lkv_err e = lkv_put(c, "greeting", "hello", 5, 0);
    lkv_pair *p = NULL;
    if (e == LKV_OK)
        e = lkv_get(c, "greeting", &p);
    if (e != LKV_OK) {
        fprintf(stderr, "%s: %s\n", lkv_strerror(e), lkv_last_error(c));
        lkv_close(c);
        return 1;
    }
    printf("%s (index %llu)\n", (char *)p->value, (unsigned long long)p->index);
    lkv_pair_free(p);
    lkv_close(c);
    return 0;
}
