"""The module componentize-py builds: the user's `app` module, then the
exports of the world its function needs (`weir udf build` passes
`weir.main` as the app and the world `weir.world()` names)."""

import app  # noqa: F401 - the user's module registers its function on import

from weir._component import *  # noqa: F401,F403 - Handler, Checkpointed or Aggregator
