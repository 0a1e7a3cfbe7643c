/* The identity function in C: every record unchanged (its key, value and
 * timestamp). The benchmark of the boundary's own cost
 * (bench/languages.sh), as udfs/identity is in Rust. */
#include "weir.h"

void weir_process(weir_context *ctx, const weir_record *record) {
    weir_emit_record(ctx, record);
}
