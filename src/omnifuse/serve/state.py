"""What every route reads: the config, the components, the metrics and the media policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from omnifuse.io import DecodeLimits
from omnifuse.serve.components import Components
from omnifuse.serve.config import ServeConfig
from omnifuse.serve.media import MediaPolicy
from omnifuse.serve.metrics import ServeMetrics


@dataclass
class ServerState:
    """One server's shared state (stored on ``app.state.omnifuse``)."""

    config: ServeConfig
    metrics: ServeMetrics = field(default_factory=ServeMetrics)
    components: Components = field(init=False)
    policy: MediaPolicy = field(init=False)
    decode_limits: DecodeLimits = field(init=False)

    def __post_init__(self) -> None:
        limits = self.config.limits
        self.components = Components(self.config, self.metrics)
        self.policy = MediaPolicy.of(
            self.config.allowed_root,
            self.config.allowed_url_hosts,
            limits.max_media_bytes,
            limits.url_timeout_s,
        )
        self.decode_limits = limits.decode_limits()


def state_of(request: Request) -> ServerState:
    state = request.app.state.omnifuse
    assert isinstance(state, ServerState)
    return state
