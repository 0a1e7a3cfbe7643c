// Passes every record through unchanged, undecoded (`rawInput`): the
// baseline for the cost of a JavaScript UDF at the Wasm boundary
// (`bench/js.sh`), as `udfs/identity` is for Rust.
import { FilterFunction, exportFunction } from "weir";

class Identity extends FilterFunction {
  static rawInput = true;
  filter() {
    return true;
  }
}

exportFunction(Identity);
