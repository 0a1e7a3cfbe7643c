"""PyFlink's side of bench/flink-compare's Python UDF pipeline: runs the
SQL statements of a file (separated by `;` at the end of a line) with the
Python scalar function `to_euro(price)` (price * 0.908, a float, as
udfs/nexmark-q1-python) registered, in streaming mode, waiting for the
INSERT.

    python pyflink_udf.py FILE.sql PARALLELISM process|thread

`process` runs the Python function in Python worker processes beside the
JVM (Flink's default), `thread` inside the JVM (PEMJA).
"""

import sys

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import udf


def main() -> None:
    sql_file, parallelism, mode = sys.argv[1:4]
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    conf.set("parallelism.default", parallelism)
    conf.set("python.execution-mode", mode)
    conf.set("python.executable", sys.executable)
    conf.set("python.client.executable", sys.executable)
    env.create_temporary_function(
        "to_euro", udf(lambda price: price * 0.908, result_type=DataTypes.DOUBLE()))
    with open(sql_file) as f:
        statements = [s for s in f.read().split(";\n") if s.strip()]
    result = None
    for statement in statements:
        result = env.execute_sql(statement)
    if result is not None:
        result.wait()


if __name__ == "__main__":
    main()
