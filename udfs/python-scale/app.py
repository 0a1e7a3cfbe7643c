"""A minimal Python map UDF for Weir, built with componentize-py against
the same `weir:operator` WIT as the Rust UDFs:

    componentize-py -d ../../wit -w operator componentize app -o python-scale.wasm

Adds `scaled = value * factor` to every JSON record (`factor` from the
operator's config, default 2). A record without a numeric `value` becomes a
per-record error instead of failing the batch.
"""

import json

import wit_world.exports
from wit_world.imports import types, logging


# componentize-py creates a new Handler for every call, so per-instance
# state lives at module level.
FACTOR = 2.0


class Handler(wit_world.exports.Handler):
    def open(self, ctx: types.Context) -> None:
        global FACTOR
        config = json.loads(ctx.config or "{}")
        FACTOR = float(config.get("factor", 2.0))
        logging.log(logging.Level.INFO, f"python-scale subtask {ctx.subtask.index} factor {FACTOR}")

    def process(self, batch):
        out = []
        for i, record in enumerate(batch):
            try:
                row = json.loads(record.value)
                row["scaled"] = float(row["value"]) * FACTOR
            except (ValueError, KeyError, TypeError) as e:
                out.append(types.Output_Error(types.RecordError(i, f"cannot scale: {e!r}")))
                continue
            value = json.dumps(row).encode()
            out.append(types.Output_Emit(types.StreamRecord(record.key, value, record.timestamp)))
        return out

    def on_timer(self, key, timestamp, domain):
        # This function registers no timers (weir:operator@0.2.0 and later ask for
        # the export all the same).
        return []

    def close(self) -> None:
        pass


if hasattr(wit_world.exports, "Checkpointed"):
    # weir:operator@0.3.0 asks for operator state; this function has none.
    # (Built against an older WIT the interface does not exist.)
    class Checkpointed(wit_world.exports.Checkpointed):
        def snapshot_state(self, checkpoint_id):
            return []

        def restore_state(self, items):
            pass
