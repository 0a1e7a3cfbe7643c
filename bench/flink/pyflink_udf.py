"""PyFlink's side of bench/flink-compare's Python UDF pipeline: runs the
SQL statements of a file (separated by `;` at the end of a line) with the
Python scalar function `to_euro(price)` (price * 0.908, a float, as
udfs/nexmark-q1-python) registered, in streaming mode, waiting for the
INSERT.

    python pyflink_udf.py FILE.sql PARALLELISM process|thread [--explain]

`process` runs the Python function in Python worker processes beside the
JVM (Flink's default), `thread` inside the JVM (PEMJA).
"""

import os
import site
import sys

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import udf


def main() -> None:
    sql_file, parallelism, mode = sys.argv[1:4]
    # In thread mode the JVM embeds its own interpreter (pemja), which does
    # not know this virtual environment: name its packages for it. Set
    # before the JVM starts (it inherits the environment).
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [*site.getsitepackages(), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    conf.set("parallelism.default", parallelism)
    conf.set("python.execution-mode", mode)
    conf.set("python.executable", sys.executable)
    conf.set("python.client.executable", sys.executable)
    # None for the CSV header's row of nulls: the planner may run the
    # function before the filter that drops that row.
    env.create_temporary_function(
        "to_euro",
        udf(lambda price: None if price is None else price * 0.908,
            result_type=DataTypes.DOUBLE()))
    with open(sql_file) as f:
        statements = [s for s in f.read().split(";\n") if s.strip()]
    result = None
    for statement in statements:
        if statement.lstrip().upper().startswith("INSERT") and "--explain" in sys.argv:
            print(env.explain_sql(statement))
            return
        result = env.execute_sql(statement)
    if result is not None:
        result.wait()


if __name__ == "__main__":
    main()
