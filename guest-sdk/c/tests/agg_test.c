/* Tests of the aggregate in agg_mean.c, calling its functions directly. */
#include "weir_aggregate.h"
#include "weir_testing.h"

WEIR_TEST(aggregate_create_add_merge_result) {
    WEIR_CHECK(weir_agg_open(WEIR_STR("{}")));
    WEIR_CHECK(!weir_agg_open(WEIR_STR("[]")));
    weir_buf acc = {0}, a = {0}, b = {0}, m = {0}, r = {0};
    weir_agg_create(&acc);
    WEIR_CHECK_JSON_EQ(weir_buf_bytes(&acc), "{\"n\":0,\"sum\":0}");
    weir_bytes v1[] = {WEIR_STR("{\"x\":1}"), WEIR_STR("{\"x\":2.5}")};
    WEIR_CHECK(weir_agg_add(weir_buf_bytes(&acc), v1, 2, &a));
    WEIR_CHECK_JSON_EQ(weir_buf_bytes(&a), "{\"n\":2,\"sum\":3.5}");
    weir_bytes v2[] = {WEIR_STR("{\"x\":-0.5}")};
    WEIR_CHECK(weir_agg_add(weir_buf_bytes(&acc), v2, 1, &b));
    WEIR_CHECK(weir_agg_merge(weir_buf_bytes(&a), weir_buf_bytes(&b), &m));
    WEIR_CHECK_JSON_EQ(weir_buf_bytes(&m), "{\"n\":3,\"sum\":3.0}");
    WEIR_CHECK(weir_agg_result(weir_buf_bytes(&m), &r));
    WEIR_CHECK_JSON_EQ(weir_buf_bytes(&r), "{\"count\":3,\"mean\":1}");
    weir_buf_free(&acc), weir_buf_free(&a), weir_buf_free(&b), weir_buf_free(&m), weir_buf_free(&r);
}

WEIR_TEST(aggregate_rejects_bad_values) {
    weir_buf acc = {0}, out = {0};
    weir_agg_create(&acc);
    weir_bytes bad[] = {WEIR_STR("{\"x\":1}"), WEIR_STR("{\"y\":1}")};
    WEIR_CHECK(!weir_agg_add(weir_buf_bytes(&acc), bad, 2, &out));
    weir_buf_free(&acc), weir_buf_free(&out);
}
