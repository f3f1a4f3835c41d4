/* Unit test runner (Check): one suite per pure module. */
#include <check.h>
#include <stdlib.h>

Suite *placement_suite(void);
Suite *codec_suite(void);
Suite *uri_suite(void);
Suite *negotiate_suite(void);
Suite *version_suite(void);
Suite *config_suite(void);
Suite *render_suite(void);
Suite *html_suite(void);
Suite *rcache_suite(void);
Suite *token_suite(void);
Suite *client_util_suite(void);
Suite *authfile_suite(void);
Suite *syncq_suite(void);
Suite *notify_suite(void);
Suite *range_suite(void);
Suite *digest_suite(void);
Suite *chunks_suite(void);
Suite *spool_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(placement_suite());
    srunner_add_suite(sr, codec_suite());
    srunner_add_suite(sr, uri_suite());
    srunner_add_suite(sr, negotiate_suite());
    srunner_add_suite(sr, version_suite());
    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, render_suite());
    srunner_add_suite(sr, html_suite());
    srunner_add_suite(sr, rcache_suite());
    srunner_add_suite(sr, token_suite());
    srunner_add_suite(sr, client_util_suite());
    srunner_add_suite(sr, authfile_suite());
    srunner_add_suite(sr, syncq_suite());
    srunner_add_suite(sr, notify_suite());
    srunner_add_suite(sr, range_suite());
    srunner_add_suite(sr, digest_suite());
    srunner_add_suite(sr, chunks_suite());
    srunner_add_suite(sr, spool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
