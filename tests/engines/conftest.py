"""A local Ray for the engine tests: 2 CPUs on the loopback interface, started once for the
folder and shut down after it. The worker helpers travel to its actors by value."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="package")
def ray_address() -> Iterator[str]:
    """The address of the Ray the tests share; subprocesses reach it through it."""
    with pytest.MonkeyPatch.context() as patch:
        # Read by Ray at import: the node then takes 127.0.0.1, so all traffic stays on loopback.
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = pytest.importorskip("ray")
        import engine_encoders
        import engine_workers
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(engine_workers)
        cloudpickle.register_pickle_by_value(engine_encoders)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        try:
            address = ray.get_runtime_context().gcs_address
            assert address.startswith("127.0.0.1:"), address
            yield address
        finally:
            ray.shutdown()
