"""scratchlm.distributed.multihost: the coordination service binds where --coordinator says, not everywhere."""

from __future__ import annotations

import jax
import pytest

from scratchlm.distributed import multihost
from scratchlm.errors import ScratchlmError


def test_bind_address_is_the_coordinator_itself():
    assert multihost.coordinator_bind_address("10.0.0.5:1234", environ={}) == "10.0.0.5:1234"
    assert multihost.coordinator_bind_address("[::1]:1234", environ={}) == "[::1]:1234"
    assert multihost.coordinator_bind_address("node0:1234", environ={}) == "node0:1234"
    # the user's explicit JAX setting wins
    assert multihost.coordinator_bind_address("10.0.0.5:1234", environ={"JAX_COORDINATOR_BIND_ADDRESS": "[::]:1234"}
                                              ) == "[::]:1234"


@pytest.mark.parametrize("bad", ["1234", "host", "host:", "host:port", "host:0", "host:70000", ":1234"])
def test_a_malformed_coordinator_is_one_error(bad):
    with pytest.raises(ScratchlmError, match="--coordinator must be HOST:PORT"):
        multihost.coordinator_bind_address(bad, environ={})


def test_initialize_passes_the_bind_address_to_jax(monkeypatch):
    """JAX's default binds process 0's service to [::]:PORT (every interface); ours passes HOST:PORT."""
    seen = {}
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(jax.config, "update", lambda *a: None)
    monkeypatch.delenv("JAX_COORDINATOR_BIND_ADDRESS", raising=False)
    multihost.initialize_distributed("127.0.0.1:4321", 2, 0)
    assert seen["coordinator_address"] == "127.0.0.1:4321"
    assert seen["coordinator_bind_address"] == "127.0.0.1:4321"
    seen.clear()
    multihost.initialize_distributed(None, None, None)  # auto-detected clusters: JAX's own choice
    assert seen["coordinator_bind_address"] is None
