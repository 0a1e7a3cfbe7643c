/* A window aggregate for the SDK's tests: the mean of the field `x` of the
 * records, with the accumulator as JSON {"n": count, "sum": total}. */
#include "weir_aggregate.h"

static bool acc_read(weir_bytes acc, int64_t *n, double *sum) {
    weir_bytes v;
    if (!weir_json_field(acc, "n", &v) || !weir_json_int(v, n)) return false;
    return weir_json_field(acc, "sum", &v) && weir_json_number(v, sum);
}

static bool acc_write(weir_buf *out, int64_t n, double sum) {
    weir_buf_printf(out, "{\"n\":%lld,\"sum\":", (long long)n);
    if (!weir_buf_json_number(out, sum)) {
        weir_set_error("the sum is not finite");
        return false;
    }
    weir_buf_puts(out, "}");
    return true;
}

bool weir_agg_open(weir_bytes config_json) {
    if (!weir_json_valid(config_json) || weir_json_type(config_json) != WEIR_JSON_OBJECT) {
        weir_set_error("config must be a JSON object");
        return false;
    }
    return true;
}

void weir_agg_create(weir_buf *acc) { weir_buf_puts(acc, "{\"n\":0,\"sum\":0.0}"); }

bool weir_agg_add(weir_bytes acc, const weir_bytes *values, size_t n, weir_buf *out) {
    int64_t count;
    double sum;
    if (!acc_read(acc, &count, &sum)) {
        weir_set_error("bad accumulator");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        weir_bytes x;
        double v;
        if (!weir_json_field(values[i], "x", &x) || !weir_json_number(x, &v)) {
            weir_set_error("value %zu has no number x", i);
            return false;
        }
        count++;
        sum += v;
    }
    return acc_write(out, count, sum);
}

bool weir_agg_merge(weir_bytes a, weir_bytes b, weir_buf *out) {
    int64_t na, nb;
    double sa, sb;
    if (!acc_read(a, &na, &sa) || !acc_read(b, &nb, &sb)) return false; /* default message */
    return acc_write(out, na + nb, sa + sb);
}

bool weir_agg_result(weir_bytes acc, weir_buf *json_out) {
    int64_t n;
    double sum;
    if (!acc_read(acc, &n, &sum)) return false;
    weir_buf_printf(json_out, "{\"count\":%lld,\"mean\":", (long long)n);
    if (n == 0) weir_buf_puts(json_out, "null");
    else weir_buf_json_number(json_out, sum / (double)n);
    weir_buf_puts(json_out, "}");
    return true;
}
